"""Field feedback, pure: the contract, joining predictions with outcomes, the
metrics of what was observed and the thresholds they cross."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from ledger import samples
from ledger.data.contracts import parse_csv_text, validate
from ledger.data.feedback import Check, FeedbackContract, FieldPolicy, checks, join, judge, measure
from ledger.errors import InputError

CONTRACT = FeedbackContract()

# 10 labelled predictions: 4 alarms of which 1 real; 2 real failures missed; 1 unlabelled.
ONE_FILE = """prediction_id,predicted_at,prediction,outcome
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
p11,2026-04-07T12:30:00+02:00,1,
"""


def _data(text=ONE_FILE, contract=CONTRACT):
    return validate(parse_csv_text(text, "feedback.csv"), contract.data_contract())


def test_counts_and_metrics_of_the_labelled_rows():
    m = measure(_data(), CONTRACT)
    assert (m.predictions, m.alarms, m.confirmed, m.unlabelled) == (10, 4, 1, 1)
    assert m.metrics["precision"] == pytest.approx(1 / 4)
    assert m.metrics["recall"] == pytest.approx(1 / 3)
    assert m.metrics["false_alarm_rate"] == pytest.approx(3 / 7)
    assert m.metrics["accuracy"] == pytest.approx(5 / 10)
    assert m.metrics["f1"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))
    assert "roc_auc" not in m.metrics  # no score column
    assert m.window_start == datetime(2026, 4, 1, 8, tzinfo=timezone.utc)
    assert m.window_end == datetime(2026, 4, 7, 10, 30, tzinfo=timezone.utc)


def test_undefined_metrics_are_left_out_not_reported_as_zero():
    text = "prediction_id,predicted_at,prediction,outcome\np1,2026-04-01T08:00:00Z,0,0\np2,2026-04-01T09:00:00Z,0,0\n"
    m = measure(_data(text), CONTRACT)
    assert m.alarms == 0
    assert set(m.metrics) == {"accuracy", "false_alarm_rate"}


def test_nothing_labelled_yet_is_one_clear_error():
    text = "prediction_id,predicted_at,prediction,outcome\np1,2026-04-01T08:00:00Z,1,\n"
    with pytest.raises(InputError, match="no row has an outcome"):
        measure(_data(text), CONTRACT)


def test_a_score_column_gives_roc_auc():
    contract = FeedbackContract(
        columns=(*CONTRACT.columns, {"name": "score", "dtype": "float", "minimum": 0, "maximum": 1}), score="score"
    )
    text = "prediction_id,predicted_at,prediction,outcome,score\na,2026-04-01T08:00:00Z,1,1,0.9\nb,2026-04-01T08:00:00Z,1,0,0.6\nc,2026-04-01T08:00:00Z,0,0,0.2\n"
    assert measure(_data(text, contract), contract).metrics["roc_auc"] == pytest.approx(1.0)


def test_two_files_are_joined_on_the_key():
    predictions = parse_csv_text(
        "prediction_id,predicted_at,prediction\np1,2026-04-01T08:00:00Z,1\np2,2026-04-01T09:00:00Z,1\np3,2026-04-02T09:00:00Z,0\n",
        "predictions.csv",
    )
    outcomes = parse_csv_text("outcome,prediction_id\n0,p2\n1,p1\n", "outcomes.csv")
    data = validate(join(predictions, outcomes, CONTRACT), CONTRACT.data_contract())
    m = measure(data, CONTRACT)
    assert (m.predictions, m.alarms, m.confirmed, m.unlabelled) == (2, 2, 1, 1)


@pytest.mark.parametrize(
    ("predictions", "outcomes", "message"),
    [
        ("prediction_id,predicted_at,prediction\np1,2026-04-01T08:00:00Z,1\np1,2026-04-01T08:00:00Z,0\n", "prediction_id,outcome\np1,1\n", "appears twice"),
        ("prediction_id,predicted_at,prediction\np1,2026-04-01T08:00:00Z,1\n", "prediction_id,outcome\np1,1\np1,0\n", "appears twice"),
        ("prediction_id,predicted_at,prediction\np1,2026-04-01T08:00:00Z,1\n", "prediction_id,outcome\nzz,1\n", "name no prediction"),
        ("prediction_id,predicted_at,prediction\np1,2026-04-01T08:00:00Z,1\n", "id,outcome\np1,1\n", "no join key"),
        ("prediction_id,predicted_at,prediction\np1,2026-04-01T08:00:00Z,1\n", "prediction_id,label\np1,1\n", "no outcome column"),
    ],
)
def test_a_bad_join_is_refused_with_one_line(predictions, outcomes, message):
    with pytest.raises(InputError, match=message):
        join(parse_csv_text(predictions, "p.csv"), parse_csv_text(outcomes, "o.csv"), CONTRACT)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "nope"}, "not among the contract's columns"),
        ({"outcome": "prediction_id"}, "must be int, float or bool"),
        ({"timestamp": "prediction"}, "must be a datetime"),
        (
            {"columns": [{"name": "prediction_id", "dtype": "string"}, {"name": "prediction", "dtype": "int"}, {"name": "outcome", "dtype": "int"}], "timestamp": None},
            "must allow missing values",
        ),
    ],
)
def test_a_contract_that_cannot_work_is_refused(changes, message):
    with pytest.raises(ValidationError, match=message):
        FeedbackContract.model_validate({**CONTRACT.model_dump(), **changes})


def test_naive_timestamps_are_refused():
    text = "prediction_id,predicted_at,prediction,outcome\np1,2026-04-01T08:00:00,1,1\n"
    with pytest.raises(InputError, match="time zone"):
        measure(_data(text), CONTRACT)


def test_checks_take_the_evaluation_thresholds_and_a_stricter_field_policy():
    evaluation = samples.evaluated("m").model_copy(update={"thresholds": {"roc_auc": 0.7, "accuracy": 0.8}})
    policy = FieldPolicy(minimums={"accuracy": 0.9, "precision": 0.6, "roc_auc": 0.5}, maximums={"false_alarm_rate": 0.2})
    found = {(c.metric, c.bound): (c.threshold, c.source) for c in checks(evaluation, policy)}
    assert found == {
        ("accuracy", "minimum"): (0.9, "field-policy"),
        ("roc_auc", "minimum"): (0.7, "evaluation"),  # the policy's 0.5 is looser
        ("precision", "minimum"): (0.6, "field-policy"),
        ("false_alarm_rate", "maximum"): (0.2, "field-policy"),
    }


def test_judge_names_the_worst_crossed_metric_and_what_it_could_not_measure():
    held_to = [
        Check("precision", 0.6, "minimum", "field-policy"),
        Check("false_alarm_rate", 0.2, "maximum", "field-policy"),
        Check("accuracy", 0.4, "minimum", "evaluation"),
        Check("roc_auc", 0.7, "minimum", "evaluation"),
    ]
    verdict = judge({"precision": 0.25, "false_alarm_rate": 0.25, "accuracy": 0.5}, held_to)
    assert [(c.metric, v) for c, v in verdict.crossed] == [("precision", 0.25), ("false_alarm_rate", 0.25)]
    assert verdict.worst[0].metric == "precision"
    assert [c.metric for c in verdict.unmeasured] == ["roc_auc"]
    assert judge({"precision": 0.6, "false_alarm_rate": 0.2}, held_to[:2]).worst is None  # at the bound is fine


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"minimums": {"precison": 0.6}}, "unknown field metric"),
        ({"maximums": {"false_alarm_rate": "high"}}, "finite number"),
        ({"minimums": {"precision": float("nan")}}, "finite number"),
        ({"minimum": {"precision": 0.6}}, "unknown setting"),
        ({"minimums": 0.6}, "must be a table"),
    ],
)
def test_a_bad_field_policy_is_one_clear_error(table, message):
    with pytest.raises(InputError, match=message):
        FieldPolicy.from_table(table)


# --- learning from feedback ------------------------------------------------------

from ledger.data.feedback import with_outcomes  # noqa: E402
from ledger.events import ColumnSpec, DataContract  # noqa: E402

TRAIN_CONTRACT = DataContract(
    columns=(ColumnSpec(name="temp", unit="K"), ColumnSpec(name="failure", dtype="int")), target="failure"
)
TRAIN = validate(parse_csv_text("temp[K],failure\n300,0\n310,1\n", "train.csv"), TRAIN_CONTRACT)
WITH_FEATURES = FeedbackContract(
    columns=(
        ColumnSpec(name="id", dtype="string"),
        ColumnSpec(name="alarm", dtype="int"),
        ColumnSpec(name="temp", unit="K"),
        ColumnSpec(name="found", dtype="int", missing="allow"),
    ),
    key="id", prediction="alarm", outcome="found", timestamp=None,
)


def test_labelled_feedback_rows_join_the_training_data_with_their_outcome_as_target():
    fb = validate(parse_csv_text("id,alarm,temp[C],found\na,1,30,0\nb,1,40,1\nc,0,20,\n", "fb.csv"), WITH_FEATURES.data_contract())
    combined = with_outcomes(TRAIN, fb)
    assert combined.row_count == 4  # two training rows, two labelled feedback rows, not the unlabelled one
    assert combined.columns["temp"].values.tolist() == pytest.approx([300, 310, 303.15, 313.15])
    assert combined.target().tolist() == [0, 1, 0, 1]


def test_feedback_without_the_training_features_cannot_be_learnt_from():
    bare = validate(parse_csv_text(ONE_FILE, "fb.csv"), CONTRACT.data_contract())
    with pytest.raises(InputError, match="no column 'temp'"):
        with_outcomes(TRAIN, bare)
