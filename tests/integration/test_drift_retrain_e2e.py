"""End to end on a real Kafka broker and a real PostgreSQL, the way operators run it:

drift check on shifted data → DriftDetected → the retraining consumer (its own
process) → a new version trained and evaluated, pointing at the alert and the new
snapshot → approved by a person (the retrainer may not) → deployed → every
notification delivered once, however often the notifier runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from drift_world import events_of, notifications, own_postgres, write_files  # noqa: F401 - fixture

from consumers import store as consumer_store
from ledger.cli import main
from ledger.client import Ledger
from ledger.events import DataSnapshotted, DriftDetected, ModelEvaluated, ModelTrained

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]  # six consumer processes

ROOT = Path(__file__).resolve().parents[2]
MODEL = "cancer"


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    consumer_store.dispose_engines()


def test_drift_to_retrained_approved_deployed_and_notified_once(tmp_path, kafka_log_url, own_postgres):  # noqa: F811
    files = write_files(tmp_path / "files")
    notes = tmp_path / "notifications.jsonl"
    environ = {
        "LEDGER_LOG": kafka_log_url,
        "LEDGER_DB": own_postgres,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "LEDGER_NOTIFY_FILE": str(notes),
    }
    cli = CliRunner()

    def ledger(*args, input=None, expect=0):
        result = cli.invoke(main, list(args), env=environ, input=input, catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    def service(*args):
        """A consumer in its own process, as it runs in production."""
        result = subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args],
            env={**os.environ, **environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    def emit(kind, actor, expect=0, **fields):
        return ledger("emit", kind, "--actor", actor, "--json", "-", input=json.dumps({"model": MODEL, **fields}), expect=expect)

    # A first version, trained by a person, approved and deployed by others.
    snap = json.loads(
        ledger(
            "data", "snapshot", MODEL, "--dataset", "cancer-data", "--contract", str(files.contract),
            "--data", str(files.reference), "--actor", "alice", "--json",
        ).stdout
    )[0]
    ledger("train", MODEL, "--snapshot", snap["snapshot_id"], "--actor", "alice")
    emit("approve", "bob", version=1)
    emit("deploy", "carol", version=1, environment="production")

    # The monitor checks production data: first as it was, then shifted.
    assert "no drift" in ledger("drift", "check", f"{MODEL}@1", "--data", str(files.same)).stderr
    drifted = ledger("drift", "check", f"{MODEL}@1", "--data", str(files.shifted), expect=5)
    assert "DRIFT DETECTED" in drifted.stderr

    # The retraining consumer, run as a service, three times over.
    first = service("consume", "retrain", "--once")
    assert "1 new effect(s), 1 delivered" in first
    service("consume", "retrain", "--once")
    service("consume", "retrain", "--once", "--from-beginning")

    with Ledger.open(kafka_log_url) as log:
        (alert,) = events_of(log, MODEL, DriftDetected)
        snapshots = {s.snapshot_id: s for s in events_of(log, MODEL, DataSnapshotted)}
        retrained = [e for e in events_of(log, MODEL, ModelTrained) if e.trigger == "drift"]
        evaluations = [e for e in events_of(log, MODEL, ModelEvaluated) if e.version == 2]

    # Exactly one new version, and its lineage: the alert and the new snapshot.
    assert len(retrained) == 1 and len(evaluations) == 1
    v2, evaluation = retrained[0], evaluations[0]
    assert v2.version == 2 and v2.parent_version == 1 and v2.actor == "retrainer"
    assert v2.trigger_alert_id == v2.causation_id == str(alert.event_id)
    assert v2.snapshot_ids == (alert.current_snapshot_id,)
    new_snapshot = snapshots[alert.current_snapshot_id]
    assert new_snapshot.dataset == "cancer-data" and new_snapshot.content_hash != snap["content_hash"]
    assert alert.reference_snapshot_id == snap["snapshot_id"]
    assert evaluation.causation_id == str(alert.event_id)
    assert evaluation.evaluation_snapshot_id == alert.current_snapshot_id
    assert evaluation.passed

    # The same lineage as the operators' views show it, from PostgreSQL.
    ledger("project")
    from projections import db as views
    from projections import lineage as graph
    from projections.queries import lineage, resolve_node

    engine = views.open_db(own_postgres)
    try:
        upstream = lineage(engine, resolve_node(f"{MODEL}@2"), direction="up")
    finally:
        engine.dispose()
    reached = {n["node_id"] for n in upstream["nodes"]}
    assert {
        graph.drift_node(MODEL, str(alert.event_id)),
        graph.snapshot_node(MODEL, alert.current_snapshot_id),
        graph.snapshot_node(MODEL, alert.reference_snapshot_id),
        graph.version_node(MODEL, 1),
    } <= reached
    kinds = {(e["src"].split(":")[0], e["kind"], e["dst"].split(":")[0]) for e in upstream["edges"]}
    assert ("drift", "triggered", "run") in kinds
    assert ("version", "parent_of", "version") in kinds

    # Nobody deploys what no person approved, and the retrainer cannot approve its own work.
    assert "not approved" in emit("deploy", "carol", version=2, environment="production", expect=1).output
    assert "four-eyes" in emit("approve", "retrainer", version=2, expect=1).output
    emit("approve", "dave", version=2)
    emit("deploy", "carol", version=2, environment="production")

    # Notifications: one per event people act on, however often the notifier runs.
    for args in (("--once",), ("--once",), ("--once", "--from-beginning")):
        service("consume", "notify", *args)
    delivered = notifications(notes)
    by_event = {}
    for note in delivered:
        by_event.setdefault(note["event_id"], []).append(note)
    assert all(len(notes_) == 1 for notes_ in by_event.values()), by_event
    kinds = sorted((n["event_type"], n["version"]) for n in delivered)
    assert kinds == sorted(
        [
            ("ModelApproved", 1), ("ModelDeployed", 1), ("DriftDetected", 1),
            ("ModelApproved", 2), ("ModelDeployed", 2),
        ]
    )

    assert "intact" in ledger("verify", "--model", MODEL).stdout
