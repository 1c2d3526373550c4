"""Crash safety: a projector process is killed with SIGKILL at random moments, many
times, over a ledger of a few thousand events. After every kill the views must be
exactly the fold of the log up to the position they store — no duplicate, no
missing row — and after the last restart, exactly a clean rebuild."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ledger.backends.sqlite import SqliteLog
from projections import db
from projections.asof import AsOf
from projections.runner import Runner, build
from projections.synthetic import populate

KILLS = 20


def _projector(log_url: str, db_url: str, batch_size: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from ledger.cli import run; run()", "--log", log_url, "--db", db_url,
         "project", "--batch-size", str(batch_size), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored_position(engine) -> dict[int, int]:
    positions = Runner(engine).positions()
    # One transaction moves every projection: they always agree.
    assert len({tuple(sorted(p.items())) for p in positions.values()}) == 1, positions
    return next(iter(positions.values()))


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_neither_duplicates_nor_gaps(tmp_path, db_url, open_engine):
    rng = random.Random(20260303)
    log = SqliteLog(tmp_path / "log.db")
    populate(log, models=20, rounds=12, seed=1, prefix="a")
    with sqlite3.connect(log.path) as conn:  # an unreadable record in the middle
        conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('ghost', 1, 'junk', 'Junk', x'00', x'c301ffffffffffffffff00', 'x', 0)"
        )
    populate(log, models=15, rounds=12, seed=2, prefix="b")
    total = len(list(log.read()))
    assert total >= 2500

    target = open_engine(db_url)
    reference = open_engine("sqlite://")  # the log folded up to each stored position
    kills = finished = topped_up = 0
    while kills < KILLS or not finished:
        process = _projector(log.url, db_url, batch_size=rng.randint(5, 60))
        if kills < KILLS:
            # Wait for a first committed batch (the interpreter's start is not
            # worth killing), then kill at a random moment of the batches after it.
            first = process.stderr.readline()
            if first.startswith("batch:"):
                time.sleep(rng.uniform(0.0, 0.12))
                process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=120)
        if process.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert process.returncode == 0, err
            finished += 1
            if kills < KILLS:
                # The projector caught up before enough kills: the ledger grows.
                topped_up += 1
                populate(log, models=3, rounds=3, seed=100 + topped_up, prefix=f"late{topped_up}")
        position = _stored_position(target)
        Runner(reference, as_of=AsOf.at_positions(position)).run(log)
        assert db.dump(target) == db.dump(reference), f"after {kills} kill(s), at {position}"

    assert _stored_position(target) == {0: max(r.position.offset for r in log.read())}
    clean = build(log)
    try:
        assert db.dump(target) == db.dump(clean)
    finally:
        clean.dispose()
    assert kills == KILLS
    log.close()
