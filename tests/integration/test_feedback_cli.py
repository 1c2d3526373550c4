"""``ledger feedback record`` on the embedded log: what a user sees and what the
log holds afterwards."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.append import Appender
from ledger.cli import main
from ledger.client import Ledger
from ledger.config import open_log
from ledger.events import DataSnapshotted, FeedbackRecorded, ModelEvaluated, PerformanceDegraded

M = "pump"
# 10 labelled: 4 alarms, 1 confirmed; accuracy 0.5, precision 0.25; 1 unlabelled.
POOR = """prediction_id,predicted_at,prediction,outcome
p1,2026-04-01T08:00:00Z,1,1
p2,2026-04-01T09:00:00Z,1,0
p3,2026-04-02T09:00:00Z,1,0
p4,2026-04-03T09:00:00Z,1,0
p5,2026-04-03T10:00:00Z,0,1
p6,2026-04-04T10:00:00Z,0,1
p7,2026-04-04T11:00:00Z,0,0
p8,2026-04-05T11:00:00Z,0,0
p9,2026-04-06T11:00:00Z,0,0
p10,2026-04-06T12:00:00Z,0,0
p11,2026-04-07T12:00:00Z,1,
"""
# 10 labelled, 9 right: accuracy 0.9, precision 0.75.
GOOD = """prediction_id,predicted_at,prediction,outcome
q1,2026-04-01T08:00:00Z,1,1
q2,2026-04-01T09:00:00Z,1,1
q3,2026-04-02T09:00:00Z,1,1
q4,2026-04-03T09:00:00Z,1,0
q5,2026-04-03T10:00:00Z,0,0
q6,2026-04-04T10:00:00Z,0,0
q7,2026-04-04T11:00:00Z,0,0
q8,2026-04-05T11:00:00Z,0,0
q9,2026-04-06T11:00:00Z,0,0
q10,2026-04-06T12:00:00Z,0,0
"""


@pytest.fixture
def world(tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    evaluated = ModelEvaluated(
        model=M, version=1, actor="ci", evaluation_snapshot_id="s1",
        metrics={"accuracy": 0.86, "roc_auc": 0.91}, thresholds={"accuracy": 0.8, "roc_auc": 0.7}, passed=True,
    )
    with open_log(log_url) as log:
        Appender(log).append([samples.snapshot(M), samples.trained(M), evaluated, samples.approved(M), samples.deployed(M)])
    (tmp_path / "poor.csv").write_text(POOR, encoding="utf-8")
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    return tmp_path, log_url


def _run(world, *args):
    tmp, log_url = world
    return CliRunner().invoke(
        main, ["--log", log_url, "--db", f"sqlite:///{tmp / 'views.db'}", "feedback", "record", *args,
               "--data-dir", str(tmp / "data")]
    )


def _events(log_url):
    with Ledger.open(log_url) as ledger:
        return list(ledger.events(M))


def test_feedback_below_the_evaluation_threshold_records_one_alert(world):
    tmp, log_url = world
    result = _run(world, f"{M}@1", "--data", str(tmp / "poor.csv"), "--environment", "production", "--actor", "technicians")
    assert result.exit_code == 6, result.output
    assert "DEGRADATION: accuracy 0.5000 < threshold 0.8 (evaluation)" in result.stderr
    assert "not measured in the field: roc_auc" in result.stderr
    events = _events(log_url)
    snapshot, feedback, alert = events[-3:]
    assert isinstance(snapshot, DataSnapshotted) and snapshot.dataset == "field-feedback" and snapshot.row_count == 11
    assert isinstance(feedback, FeedbackRecorded)
    assert (feedback.predictions, feedback.alarms, feedback.confirmed, feedback.unlabelled) == (10, 4, 1, 1)
    assert feedback.actor == "technicians" and feedback.snapshot_id == snapshot.snapshot_id
    assert feedback.window_start.isoformat() == "2026-04-01T08:00:00+00:00"
    assert isinstance(alert, PerformanceDegraded)
    assert (alert.metric, alert.value, alert.threshold, alert.threshold_source) == ("accuracy", 0.5, 0.8, "evaluation")
    assert alert.feedback_event_id == str(feedback.event_id)

    again = _run(world, f"{M}@1", "--data", str(tmp / "poor.csv"), "--environment", "production", "--actor", "technicians")
    assert again.exit_code == 6
    assert "already recorded" in again.stderr
    assert len(_events(log_url)) == len(events)


def test_feedback_within_thresholds_records_no_alert(world):
    tmp, log_url = world
    result = _run(world, f"{M}@1", "--data", str(tmp / "good.csv"), "--environment", "production", "--actor", "technicians")
    assert result.exit_code == 0, result.output
    assert "no degradation" in result.stderr
    kinds = [type(e).__name__ for e in _events(log_url)]
    assert kinds[-2:] == ["DataSnapshotted", "FeedbackRecorded"]
    assert "PerformanceDegraded" not in kinds


def test_a_stricter_field_policy_raises_the_alert(world):
    tmp, log_url = world
    (tmp / "policy.toml").write_text("[feedback]\nminimums = { precision = 0.8 }\nmaximums = { false_alarm_rate = 0.5 }\n")
    result = _run(
        world, f"{M}@1", "--data", str(tmp / "good.csv"), "--environment", "production", "--actor", "technicians",
        "--policy", str(tmp / "policy.toml"),
    )
    assert result.exit_code == 6, result.output
    alert = _events(log_url)[-1]
    assert (alert.metric, alert.value, alert.threshold, alert.threshold_source) == ("precision", 0.75, 0.8, "field-policy")


def test_predictions_and_outcomes_in_two_files(world):
    tmp, log_url = world
    (tmp / "p.csv").write_text("prediction_id,predicted_at,prediction\nx1,2026-04-01T08:00:00Z,1\nx2,2026-04-01T09:00:00Z,0\nx3,2026-04-02T09:00:00Z,1\n")
    (tmp / "o.csv").write_text("prediction_id,outcome\nx1,1\nx2,0\n")
    result = _run(
        world, f"{M}@1", "--predictions", str(tmp / "p.csv"), "--outcomes", str(tmp / "o.csv"),
        "--environment", "production", "--actor", "labelling-job",
    )
    assert result.exit_code == 0, result.output
    feedback = _events(log_url)[-1]
    assert (feedback.predictions, feedback.alarms, feedback.confirmed, feedback.unlabelled) == (2, 1, 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"positive": 1, "positive": 0}', "appears twice"),  # which one? neither
        ('{"positive": NaN}', "not a JSON number"),
        ('{"positive": 1e999}', "too large to be finite"),
    ],
)
def test_a_feedback_contract_is_read_as_strictly_as_an_event(world, tmp_path, text, message):
    tmp, log_url = world
    before = len(_events(log_url))
    (tmp_path / "contract.json").write_text(text, encoding="utf-8")
    result = _run(
        world, f"{M}@1", "--data", str(tmp / "poor.csv"), "--actor", "technicians",
        "--environment", "production", "--contract", str(tmp_path / "contract.json"),
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "invalid feedback contract" in lines[0] and message in lines[0], result.stderr
    assert len(_events(log_url)) == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--environment", "staging"], 1, "not deployed to staging"),
        (["--environment", "production", "--window-start", "yesterday"], 2, "--window-start"),
        (["--environment", "production", "--policy", "missing.toml"], 2, "cannot read the field policy"),
        (["--environment", "production", "--contract", "missing.json"], 2, "cannot read the feedback contract"),
    ],
)
def test_refusals_are_one_line_and_leave_the_log_unchanged(world, args, code, message):
    tmp, log_url = world
    before = len(_events(log_url))
    result = _run(world, f"{M}@1", "--data", str(tmp / "poor.csv"), "--actor", "technicians", *args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert len(_events(log_url)) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prediction_id,predicted_at,prediction,outcome\np1,2026-04-01T08:00:00Z,maybe,1\n", "not a valid int"),
        ("prediction_id,prediction,outcome\np1,1,1\n", "missing contract column"),
        ("prediction_id,predicted_at,prediction,outcome\np1,2026-04-01T08:00:00,1,1\n", "time zone"),
        ("prediction_id,predicted_at,prediction,outcome\np1,2026-04-01T08:00:00Z,1,\n", "no row has an outcome"),
        ("\x00\x01,\"\n", "header"),
    ],
)
def test_bad_feedback_data_is_one_line_and_leaves_the_log_unchanged(world, text, message):
    tmp, log_url = world
    (tmp / "bad.csv").write_text(text, encoding="utf-8")
    before = len(_events(log_url))
    result = _run(world, f"{M}@1", "--data", str(tmp / "bad.csv"), "--environment", "production", "--actor", "t")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert len(_events(log_url)) == before
