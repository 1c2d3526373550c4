"""The audit view: one row per record — who, what, when, hash and chain status —
filtered with bound parameters only."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest
from projection_scenario import at, play

from ledger.backends.sqlite import SqliteLog
from ledger.errors import InputError
from projections import queries
from projections.asof import AsOf
from projections.runner import project


@pytest.fixture
def scripted(tmp_path):
    log = SqliteLog(tmp_path / "log.db")
    script = play(log)
    yield script
    log.close()


def test_one_row_per_event_with_actor_summary_hash_and_an_intact_chain(scripted, engine):
    project(scripted.log, engine)
    rows = queries.audit(engine)
    records = list(scripted.log.read())
    assert [r["position"] for r in rows] == [str(r.position) for r in records]
    assert [r["hash"] for r in rows] == [r.hash for r in records]
    assert {r["chain"] for r in rows} == {"ok"}
    by_position = {r["position"]: r for r in rows}
    rollback = by_position[str(scripted.positions["churn rollback to v1"])]
    assert rollback["actor"] == "oncall"
    assert rollback["event_type"] == "ModelDeployed"
    assert (rollback["model"], rollback["version"]) == ("churn", 1)
    assert rollback["recorded_at"] == "2026-03-05T10:00:00.000000Z"
    assert rollback["summary"] == "deployed v1 to production, replacing v2"
    evaluated = by_position[str(scripted.positions["fraud v1 evaluated"])]
    assert evaluated["summary"] == "evaluated v1 on f1: failed (auc=0.55, f1=0.35)"
    trained = by_position[str(scripted.positions["churn v2 trained"])]
    assert trained["summary"] == "trained v2 on s2 with code git:bbb222, retrained from v1"
    assert trained["prev_hash"] == by_position[str(scripted.positions["churn s2"])]["hash"]


def test_filters_by_model_actor_type_and_time_range(scripted, engine):
    project(scripted.log, engine)
    assert {r["model"] for r in queries.audit(engine, model="fraud")} == {"fraud"}
    assert [r["summary"] for r in queries.audit(engine, actor="carol")] == ["approved v2: better auc"]
    deploys = queries.audit(engine, event_type="ModelDeployed", model="churn")
    assert [r["actor"] for r in deploys] == ["deployer", "deployer", "deployer", "oncall"]
    window = queries.audit(engine, since="2026-03-05", until="2026-03-07")  # bare dates: midnight UTC
    assert [r["summary"].split(":")[0] for r in window] == ["drift on v2 in production", "deployed v1 to production, replacing v2", "retired v2"]
    assert queries.audit(engine, since=at(5, 9), until=at(5, 9)) == window[:1]
    assert len(queries.audit(engine, limit=3)) == 3
    as_of = queries.audit(engine, as_of=AsOf.at(at(2, 9)))
    assert as_of[-1]["summary"] == "deployed v1 to production"
    with pytest.raises(InputError):
        queries.audit(engine, since="2026-03-06", until="2026-03-05")
    with pytest.raises(InputError):
        queries.audit(engine, since="last tuesday")


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "churn' OR '1'='1"),
        ("actor", "bob'; DROP TABLE audit_events; --"),
        ("event_type", "ModelDeployed\" OR 1=1 --"),
        ("model", "%"),
    ],
)
def test_filter_values_are_data_never_sql(scripted, engine, field, value):
    project(scripted.log, engine)
    assert queries.audit(engine, **{field: value}) == []
    assert len(queries.audit(engine)) == len(scripted.positions)


def test_an_altered_event_breaks_the_chain_where_it_is(tmp_path, engine):
    log = SqliteLog(tmp_path / "log.db")
    script = play(log)
    approval = script.positions["churn v1 approved"]
    with sqlite3.connect(log.path) as conn:
        (data,) = conn.execute("SELECT data FROM events WHERE position = ?", (approval.offset,)).fetchone()
        assert b"bob" in data
        conn.execute("UPDATE events SET data = ? WHERE position = ?", (data.replace(b"bob", b"eve"), approval.offset))
    project(log, engine)
    rows = {r["position"]: r for r in queries.audit(engine)}
    broken = sorted((p for p, r in rows.items() if r["chain"] == "broken"), key=lambda p: int(p.split(":")[1]))
    # The altered record no longer matches the hash stored at append time, and the
    # next event of its model links to the original bytes.
    assert broken == [str(approval), str(script.positions["churn v1 to production"])]
    assert rows[str(approval)]["actor"] == "eve"
    assert queries.audit(engine, chain="broken", model="fraud") == []
    log.close()


def test_unreadable_records_have_a_row_too(tmp_path, engine):
    log = SqliteLog(tmp_path / "log.db")
    play(log)
    with sqlite3.connect(log.path) as conn:
        conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('ghost', 1, 'junk-1', 'Junk', x'00', x'deadbeef', 'x', ?)",
            (int(datetime(2026, 3, 8, tzinfo=timezone.utc).timestamp() * 1000),),
        )
    project(log, engine)
    [row] = queries.audit(engine, event_type="unreadable")
    assert row["model"] == "ghost"
    assert row["chain"] == "unverifiable"
    assert row["recorded_at"] == "2026-03-08T00:00:00.000000Z"
    assert "unreadable record quarantined" in row["summary"] and "too short" in row["summary"]
    log.close()
