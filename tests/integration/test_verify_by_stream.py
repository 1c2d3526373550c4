"""Verifying the embedded log stream after stream (one stream in memory at a time)
reports exactly what verifying it in log order reports: same problems, same order,
same heads — on a log with interleaved streams, several kinds of damage and a
record without a model."""

from __future__ import annotations

import sqlite3

from ledger.backends.sqlite import SqliteLog
from ledger.client import Ledger
from ledger.verify import verify
from projections.synthetic import populate


def test_stream_by_stream_verification_reports_what_log_order_verification_does(tmp_path):
    path = tmp_path / "log.db"
    log = SqliteLog(path)
    populate(log, models=6, rounds=4, seed=11, prefix="m")
    log.close()
    with sqlite3.connect(path) as conn:
        conn.execute(  # a record without a model, in the middle
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('', 1, 'junk', 'Junk', x'00', x'c301ffff', 'x', 0)"
        )
        conn.execute("DELETE FROM events WHERE model = 'm-0001' AND sequence = 3")
        data = conn.execute("SELECT data FROM events WHERE model = 'm-0004' AND sequence = 5").fetchone()[0]
        conn.execute(
            "UPDATE events SET data = ? WHERE model = 'm-0004' AND sequence = 5",
            (bytes(data)[:-1] + bytes([data[-1] ^ 1]),),
        )
        positions = [r[0] for r in conn.execute("SELECT position FROM events WHERE model = 'm-0002' ORDER BY sequence")]
    populate(SqliteLog(path), models=2, rounds=1, seed=12, prefix="late")

    log = SqliteLog(path)
    in_log_order = verify(log.read(), home=None, heads={"m-0000": (3, "0" * 64)})
    with Ledger(log) as ledger:
        by_stream = ledger.verify(heads={"m-0000": (3, "0" * 64)})
    assert not in_log_order.ok and len(in_log_order.problems) >= 4
    assert [str(p) for p in by_stream.problems] == [str(p) for p in in_log_order.problems]
    assert by_stream.as_dict() == in_log_order.as_dict()
    # The streams are interleaved: a stream's events are not adjacent in the log.
    assert positions[-1] - positions[0] > len(positions)
