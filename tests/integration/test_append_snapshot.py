"""A writer's first append on a long stream starts from the rule-state snapshot kept
beside the embedded log — only while the log still holds the chain head the
snapshot was computed at; otherwise it folds the whole stream as before."""

from __future__ import annotations

import sqlite3

import pytest

from ledger import append as append_module
from ledger import codec, rule_snapshots, samples
from ledger.client import Ledger
from ledger.errors import DecodeError, RuleViolation
from ledger.events import DriftDetected, ModelApproved, ModelDeployed, ModelEvaluated, ModelTrained

MODEL = "churn"


def _drift(i: int) -> DriftDetected:
    return DriftDetected(
        model=MODEL, version=1, actor="monitor", environment="production", metric="psi",
        value=0.1 + i / 10_000, threshold=0.2, reference_snapshot_id="s1",
    )


@pytest.fixture
def long_stream(tmp_path):
    """A model with v1 deployed to production after ~250 daily drift checks, and v2
    trained but not evaluated."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with Ledger.open(url) as ledger:
        ledger.emit(samples.snapshot(MODEL, "s1"))
        ledger.emit(ModelTrained(model=MODEL, version=1, actor="trainer", snapshot_ids=("s1",), code_ref="git:1",
                                 artifact_uri="s3://m/1", artifact_hash="sha256:1"))
        ledger.emit(ModelEvaluated(model=MODEL, version=1, actor="ci", evaluation_snapshot_id="s1",
                                   metrics={"auc": 0.9}, passed=True))
        ledger.emit(ModelApproved(model=MODEL, version=1, actor="reviewer"))
        ledger.emit(ModelDeployed(model=MODEL, version=1, actor="deployer", environment="production"))
        for start in range(0, 250, 50):
            ledger.emit_many([_drift(i) for i in range(start, start + 50)])
        ledger.emit(ModelTrained(model=MODEL, version=2, actor="trainer", snapshot_ids=("s1",), code_ref="git:2",
                                 artifact_uri="s3://m/2", artifact_hash="sha256:2", parent_version=1))
    return url, tmp_path / "log.db"


@pytest.fixture
def folded(monkeypatch):
    """How many records each fold of the append path walked."""
    counts: list[int] = []
    real = append_module.fold

    def counting(model, records, state=None):
        records = list(records)
        counts.append(len(records))
        return real(model, records, state)

    monkeypatch.setattr(append_module, "fold", counting)
    return counts


def _snapshot_row(path) -> tuple[int, str, bytes]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT sequence, hash, state FROM rule_snapshots WHERE model = ?", (MODEL,)).fetchone()


def test_a_fresh_writer_folds_only_what_follows_the_snapshot_and_keeps_every_rule(long_stream, folded):
    url, path = long_stream
    sequence, _, _ = _snapshot_row(path)
    assert sequence >= rule_snapshots.EVERY

    with Ledger.open(url) as ledger:  # a new process's writer: nothing cached
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(ModelDeployed(model=MODEL, version=2, actor="deployer", environment="production"))
        assert refused.value.rule == "deploy-only-approved"
        assert folded and max(folded) <= rule_snapshots.EVERY + 1
        ledger.emit(ModelEvaluated(model=MODEL, version=2, actor="ci", evaluation_snapshot_id="s1",
                                   metrics={"auc": 0.91}, passed=True))
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(ModelApproved(model=MODEL, version=2, actor="trainer"))
        assert refused.value.rule == "four-eyes"
        accepted = ledger.emit(ModelDeployed(model=MODEL, version=1, actor="deployer", environment="staging"))
        assert accepted.event.sequence == 258
        full = ledger.state(MODEL)  # the whole stream, folded from the log
    with Ledger.open(url) as fresh:
        fresh.emit(_drift(999))
        state = fresh.appender._states[MODEL]
    assert state.versions == full.versions and state.deployed == full.deployed
    assert state.sequence == full.sequence + 1


def test_a_snapshot_whose_head_the_log_no_longer_holds_is_not_used(long_stream, folded):
    url, path = long_stream
    sequence, _, _ = _snapshot_row(path)
    with sqlite3.connect(path) as conn:  # the event the snapshot was computed at, altered in place
        data = conn.execute("SELECT data FROM events WHERE model = ? AND sequence = ?", (MODEL, sequence)).fetchone()[0]
        conn.execute(
            "UPDATE events SET data = ? WHERE model = ? AND sequence = ?",
            (bytes(data).replace(b"monitor", b"monitox"), MODEL, sequence),
        )
    with Ledger.open(url) as ledger, pytest.raises(DecodeError, match="damaged"):
        ledger.emit(_drift(1000))
    assert folded == [256]  # the whole stream: the snapshot was passed over


def test_an_unreadable_snapshot_falls_back_to_the_full_fold(long_stream, folded):
    url, path = long_stream
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE rule_snapshots SET state = ? WHERE model = ?", (b"{not json", MODEL))
    with Ledger.open(url) as ledger:
        accepted = ledger.emit(_drift(1001))
    assert accepted.event.sequence == 257
    assert folded == [256]


def test_a_fresh_writer_from_a_snapshot_knows_alerts_and_feedback_from_before_it(long_stream, folded):
    """The snapshot holds every part of the rule state: a retraining may name a
    drift alert raised before the snapshot, and a degradation may name feedback
    recorded before it (both were refused from a snapshot that dropped them)."""
    url, _ = long_stream
    with Ledger.open(url) as ledger:
        first_alert = next(r for r in ledger.log.read(model=MODEL) if r.event_type == "DriftDetected")
    alert_id = str(codec.decode(first_alert.data).event_id)
    with Ledger.open(url) as ledger:
        feedback = ledger.emit(samples.feedback(MODEL)).event
        ledger.emit_many([_drift(i) for i in range(1000, 1100)])  # a new snapshot after both
    folded.clear()
    with Ledger.open(url) as fresh:
        retrain = samples.trained(MODEL, 3, snapshots=("s1",), parent_version=1, trigger="drift",
                                  trigger_alert_id=alert_id)
        assert fresh.emit(retrain).event.version == 3
        assert fresh.emit(samples.degraded(MODEL, feedback_event_id=str(feedback.event_id))).event.sequence
    assert max(folded) < 100  # it started from the snapshot
