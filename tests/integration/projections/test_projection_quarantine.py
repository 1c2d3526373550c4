"""Unreadable records in the embedded log: quarantined with their position and
reason, shown in the audit trail and by ``ledger verify``; the projector neither
stops nor skips anything else."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from click.testing import CliRunner
from projection_scenario import play, train

from ledger.append import Appender
from ledger.backends.sqlite import SqliteLog
from ledger.cli import main
from ledger.codec import MARKER
from projections import queries
from projections.runner import project

UNKNOWN_FINGERPRINT = MARKER + bytes.fromhex("0123456789abcdef") + b"\x02\x04body"


def _insert(log: SqliteLog, model: str, sequence: int, data: bytes) -> int:
    """Write a record straight into the log file, as a foreign writer or a damaged
    disk would; returns its position."""
    with sqlite3.connect(log.path) as conn:
        cursor = conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES (?, ?, ?, 'Unknown', x'00', ?, ?, 0)",
            (model, sequence, f"foreign-{sequence}-{model}", data, hashlib.sha256(data).hexdigest()),
        )
        return cursor.lastrowid


@pytest.fixture
def damaged(tmp_path):
    log = SqliteLog(tmp_path / "log.db")
    script = play(log)
    churn_bytes = next(r.data for r in log.read() if r.position == script.positions["churn s1"])
    bad = {
        "not avro": _insert(log, "ghost", 1, b"hello, world"),
        "unknown fingerprint": _insert(log, "ghost", 2, UNKNOWN_FINGERPRINT),
        "no model key": _insert(log, "", 1, UNKNOWN_FINGERPRINT),
        "key mismatch": _insert(log, "fraud", -1, churn_bytes),
    }
    # The ledger goes on after the bad records.
    Appender(log).append([train("fraud", 3, ("f1",), "git:fff002", parent=2)])
    yield log, script, bad
    log.close()


def test_bad_records_are_quarantined_with_position_and_reason(damaged, engine):
    log, _, bad = damaged
    report = project(log, engine)
    assert report.unreadable == 4
    rows = {r["position"]: r for r in queries.quarantined(engine)}
    assert set(rows) == {f"0:{offset}" for offset in bad.values()}
    assert "not Avro single-object encoding" in rows[f"0:{bad['not avro']}"]["reason"]
    assert rows[f"0:{bad['not avro']}"]["model"] == "ghost"
    assert rows[f"0:{bad['not avro']}"]["sha256"] == hashlib.sha256(b"hello, world").hexdigest()
    assert rows[f"0:{bad['not avro']}"]["raw_length"] == len(b"hello, world")
    assert "unknown writer schema fingerprint 0123456789abcdef" in rows[f"0:{bad['unknown fingerprint']}"]["reason"]
    assert rows[f"0:{bad['unknown fingerprint']}"]["model"] == "ghost"
    assert rows[f"0:{bad['no model key']}"]["reason"] == "record has no model key"
    assert rows[f"0:{bad['key mismatch']}"]["reason"] == "the record's key names model 'fraud' but the event is for 'churn'"
    assert queries.status(engine)["quarantined"] == 4


def test_events_after_bad_records_are_applied(damaged, engine):
    log, _, _ = damaged
    project(log, engine)
    assert [v["version"] for v in queries.model_versions(engine, "fraud")] == [1, 2, 3]
    # The churn snapshot stored under fraud's key did not become an event of fraud.
    snapshots = queries.audit(engine, model="fraud", event_type="DataSnapshotted")
    assert [r["summary"].split(" of ")[0] for r in snapshots] == ["snapshot f1"]
    assert queries.audit(engine, model="fraud", chain="broken") == []


def test_bad_records_appear_in_the_audit_trail(damaged, engine):
    log, _, bad = damaged
    project(log, engine)
    unreadable = queries.audit(engine, event_type="unreadable")
    assert sorted(r["position"] for r in unreadable) == sorted(f"0:{o}" for o in bad.values())
    assert {r["chain"] for r in unreadable} == {"unverifiable"}
    assert len(queries.audit(engine)) == len(list(log.read()))


def test_a_quarantined_record_is_not_quarantined_twice(damaged, engine):
    log, _, _ = damaged
    project(log, engine)
    assert project(log, engine).unreadable == 0
    assert len(queries.quarantined(engine)) == 4


def test_verify_reports_the_same_records(damaged):
    log, _, bad = damaged
    result = CliRunner().invoke(main, ["--log", log.url, "verify"])
    assert result.exit_code == 1
    for offset in bad.values():
        assert f"at 0:{offset}" in result.output
