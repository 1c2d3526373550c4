"""Field feedback closes the loop, end to end, the way operators run it:

v1 trained (held to accuracy ≥ 0.85), approved, deployed → the monitor finds no
drift in the inputs → technicians' feedback within the threshold records no
alert → feedback with too many false alarms records exactly one
PerformanceDegraded → the retraining consumer (its own process, run three times)
trains exactly one new version on the training data plus the labelled feedback →
lineage shows feedback → alert → retraining → new version → a person approves it
and it replaces v1 → the degradation is notified once, like drift.
"""

from __future__ import annotations

import csv
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
from ledger.events import (
    ColumnSpec,
    DataContract,
    DataSnapshotted,
    FeedbackRecorded,
    ModelDeployed,
    ModelTrained,
    PerformanceDegraded,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "cancer"
UNLABELLED = 10


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    consumer_store.dispose_engines()


@pytest.fixture(
    params=[
        "sqlite-log/sqlite-db",
        pytest.param("kafka-log/postgres-db", marks=[pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]),
    ]
)
def urls(request, tmp_path):
    if request.param.startswith("kafka"):
        return request.getfixturevalue("kafka_log_url"), request.getfixturevalue("own_postgres")
    return f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'views.db'}"


def write_feedback(files, root: Path) -> tuple[Path, Path, Path]:
    """The production half of the data (no drift), with the alarm each row raised
    and the outcome technicians found: ``poor`` flags half of the benign cases
    too (false alarms), ``good`` is right on all but two rows. The last rows of
    ``poor`` have no outcome yet."""
    with open(files.same, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    outcome = header.index("malignant")
    contract = DataContract.model_validate_json(files.contract.read_text())
    columns = [
        ColumnSpec(name="prediction_id", dtype="string"),
        ColumnSpec(name="predicted_at", dtype="datetime"),
        ColumnSpec(name="alarm", dtype="int", minimum=0, maximum=1),
        *(c if c.name != "malignant" else c.model_copy(update={"missing": "allow"}) for c in contract.columns),
    ]
    feedback_contract = root / "feedback-contract.json"
    feedback_contract.write_text(
        json.dumps(
            {
                "columns": [c.model_dump() for c in columns],
                "key": "prediction_id",
                "prediction": "alarm",
                "outcome": "malignant",
                "timestamp": "predicted_at",
                "positive": 1,
            }
        )
    )

    def write(name, alarm, unlabelled=0):
        path = root / name
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prediction_id", "predicted_at", "alarm", *header])
            for i, row in enumerate(rows):
                label = int(row[outcome])
                cells = list(row)
                if i >= len(rows) - unlabelled:
                    cells[outcome] = ""
                writer.writerow([f"{name}-{i}", f"2026-04-{1 + i % 28:02d}T08:00:00Z", alarm(i, label), *cells])
        return path

    poor = write("poor.csv", lambda i, label: 1 if label == 1 or i % 2 == 0 else 0, UNLABELLED)
    good = write("good.csv", lambda i, label: label if i not in (3, 4) else 1 - label)
    return feedback_contract, poor, good


def test_degradation_to_one_retraining_lineage_approval_and_notifications(tmp_path, urls):
    log_url, db_url = urls
    files = write_files(tmp_path / "files")
    feedback_contract, poor, good = write_feedback(files, tmp_path / "files")
    notes = tmp_path / "notifications.jsonl"
    environ = {
        "LEDGER_LOG": log_url,
        "LEDGER_DB": db_url,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "LEDGER_NOTIFY_FILE": str(notes),
        "LEDGER_RETRAIN_INCLUDE_FEEDBACK": "true",
    }
    cli = CliRunner()

    def ledger(*args, input=None, expect=0):
        result = cli.invoke(main, list(args), env=environ, input=input, catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    def service(*args):
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

    def feedback(path, expect):
        return ledger(
            "feedback", "record", f"{MODEL}@1", "--data", str(path), "--environment", "production",
            "--actor", "technicians", "--contract", str(feedback_contract), expect=expect,
        )

    snap = json.loads(
        ledger(
            "data", "snapshot", MODEL, "--dataset", "cancer-data", "--contract", str(files.contract),
            "--data", str(files.reference), "--actor", "alice", "--json",
        ).stdout
    )[0]
    ledger("train", MODEL, "--snapshot", snap["snapshot_id"], "--actor", "alice", "--threshold", "roc_auc=0.7", "--threshold", "accuracy=0.85")
    emit("approve", "bob", version=1)
    emit("deploy", "carol", version=1, environment="production")

    # The inputs have not drifted …
    assert "no drift" in ledger("drift", "check", f"{MODEL}@1", "--data", str(files.same)).stderr
    # … feedback within the threshold raises nothing …
    assert "no degradation" in feedback(good, 0).stderr
    # … feedback full of false alarms raises exactly one alert, however often it is recorded.
    degraded = feedback(poor, 6)
    assert "DEGRADATION: accuracy" in degraded.stderr and "(evaluation)" in degraded.stderr
    feedback(poor, 6)

    with Ledger.open(log_url) as log:
        reports = events_of(log, MODEL, FeedbackRecorded)
        (alert,) = events_of(log, MODEL, PerformanceDegraded)
    assert len(reports) == 2
    poor_report = next(r for r in reports if str(r.event_id) == alert.feedback_event_id)
    assert poor_report.unlabelled == UNLABELLED and poor_report.confirmed <= poor_report.alarms <= poor_report.predictions
    assert poor_report.metrics["false_alarm_rate"] > 0.3 and alert.value == poor_report.metrics["accuracy"] < 0.85
    assert (alert.metric, alert.threshold, alert.threshold_source) == ("accuracy", 0.85, "evaluation")

    for args in (("--once",), ("--once",), ("--once", "--from-beginning")):
        service("consume", "retrain", *args)

    with Ledger.open(log_url) as log:
        retrained = [e for e in events_of(log, MODEL, ModelTrained) if e.version > 1]
        snapshots = {s.snapshot_id: s for s in events_of(log, MODEL, DataSnapshotted)}
    assert len(retrained) == 1
    v2 = retrained[0]
    assert (v2.version, v2.parent_version, v2.trigger, v2.actor) == (2, 1, "degradation", "retrainer")
    assert v2.trigger_alert_id == v2.causation_id == str(alert.event_id)
    learnt_from = snapshots[v2.snapshot_ids[0]]
    assert learnt_from.dataset == "cancer-data"
    # As for drift, the base is the newest data of the version's dataset before the
    # alert (here the production data the drift check registered), plus the
    # labelled feedback rows (not the unlabelled ones).
    base = [s for s in snapshots.values() if s.dataset == "cancer-data" and s.sequence < alert.sequence][-1]
    assert base.snapshot_id != snap["snapshot_id"]
    assert learnt_from.row_count == base.row_count + poor_report.predictions

    ledger("project")
    from projections import db as views
    from projections import lineage as graph
    from projections.queries import lineage, resolve_node

    engine = views.open_db(db_url)
    try:
        upstream = lineage(engine, resolve_node(f"{MODEL}@2"), direction="up")
    finally:
        engine.dispose()
    reached = {n["node_id"] for n in upstream["nodes"]}
    assert {
        graph.degradation_node(MODEL, str(alert.event_id)),
        graph.feedback_node(MODEL, alert.feedback_event_id),
        graph.snapshot_node(MODEL, poor_report.snapshot_id),
        graph.version_node(MODEL, 1),
    } <= reached
    kinds = {(e["src"].split(":")[0], e["kind"], e["dst"].split(":")[0]) for e in upstream["edges"]}
    assert {
        ("deployment", "observed", "feedback"),
        ("feedback", "raised", "degradation"),
        ("degradation", "triggered", "run"),
        ("run", "produced", "version"),
    } <= kinds

    assert "four-eyes" in emit("approve", "retrainer", version=2, expect=1).output
    emit("approve", "dave", version=2)
    emit("deploy", "carol", version=2, environment="production")
    with Ledger.open(log_url) as log:
        assert events_of(log, MODEL, ModelDeployed)[-1].replaced_version == 1

    for args in (("--once",), ("--once",), ("--once", "--from-beginning")):
        service("consume", "notify", *args)
    delivered = notifications(notes)
    assert len({n["event_id"] for n in delivered}) == len(delivered)
    assert sorted((n["event_type"], n["version"]) for n in delivered) == sorted(
        [("ModelApproved", 1), ("ModelDeployed", 1), ("PerformanceDegraded", 1), ("ModelApproved", 2), ("ModelDeployed", 2)]
    )
    (note,) = [n for n in delivered if n["event_type"] == "PerformanceDegraded"]
    assert "degraded in production: accuracy" in note["summary"]

    assert "intact" in ledger("verify", "--model", MODEL).stdout
