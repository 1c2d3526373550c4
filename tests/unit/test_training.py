"""The training pipeline and the retraining consumer's pure parts: what it reacts
to, which data it picks, the evaluation policy, and determinism."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from consumers import retrain, training
from ledger.data import datasets
from consumers.runner import Effect, EffectFailed
from ledger.errors import ConflictError, InputError, RuleViolation
from ledger.events import (
    ColumnSpec,
    DataContract,
    DataSnapshotted,
    DriftDetected,
    ModelApproved,
)


@pytest.fixture(scope="module")
def cancer() -> datasets.Dataset:
    bunch = load_breast_cancer()
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    contract = DataContract(
        columns=(*(ColumnSpec(name=n) for n in names), ColumnSpec(name="malignant", dtype="int")),
        target="malignant",
    )
    lines = [",".join([*names, "malignant"])]
    lines += [",".join([*(repr(float(v)) for v in row), str(int(t))]) for row, t in zip(bunch.data, bunch.target, strict=True)]
    return datasets.validate(datasets.parse_csv_text("\n".join(lines)), contract)


def test_fit_learns_and_reports_the_standard_metrics(cancer):
    fitted = training.fit(cancer)
    assert set(fitted.metrics) == {"accuracy", "f1", "roc_auc"}
    assert fitted.metrics["roc_auc"] > 0.95  # a well-known, easy dataset
    assert training.passed(fitted.metrics, training.DEFAULT_THRESHOLDS)
    assert fitted.hyperparameters["features"] == list(cancer.feature_names)
    assert fitted.hyperparameters["target"] == "malignant"


def test_training_is_deterministic_down_to_the_artifact_bytes(cancer, tmp_path):
    first, second = training.fit(cancer), training.fit(cancer)
    assert first.metrics == second.metrics
    a = training.save_artifact(training.artifact_bytes(first.pipeline), "m", 1, tmp_path)
    b = training.save_artifact(training.artifact_bytes(second.pipeline), "m", 1, tmp_path)
    assert a == b
    assert a[0].endswith(f"/m/v1-{a[1].removeprefix('sha256:')[:12]}.joblib")


def test_the_artifact_is_the_fitted_pipeline(cancer, tmp_path):
    import joblib

    fitted = training.fit(cancer)
    uri, _ = training.save_artifact(training.artifact_bytes(fitted.pipeline), "m", 3, tmp_path)
    loaded = joblib.load(datasets.path_of(uri))
    X = cancer.matrix(impute=False)
    assert np.array_equal(loaded.predict(X), fitted.pipeline.predict(X))


def _rows(dataset: datasets.Dataset, rows) -> datasets.Dataset:
    """The CSV of ``rows`` of ``dataset``, parsed and validated again: another snapshot."""
    names = [c.name for c in dataset.contract.columns]
    lines = [",".join(names)]
    lines += [",".join(str(dataset.columns[n].values[r].item()) for n in names) for r in rows]
    return datasets.validate(datasets.parse_csv_text("\n".join(lines)), dataset.contract)


def test_evaluation_on_a_separate_snapshot(cancer):
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    # Every third row is held out as the evaluation snapshot; training never sees it.
    held_out = [r for r in range(cancer.row_count) if r % 3 == 0]
    train = _rows(cancer, [r for r in range(cancer.row_count) if r % 3])
    evaluation = _rows(cancer, held_out)
    fitted = training.fit(train, evaluation)
    assert fitted.hyperparameters["evaluation"] == "evaluation snapshot"

    # The metrics are those of the evaluation rows, computed here with sklearn.
    X = evaluation.matrix(list(cancer.feature_names), impute=False)
    y = evaluation.target()
    assert fitted.metrics["accuracy"] == pytest.approx(accuracy_score(y, fitted.pipeline.predict(X)))
    assert fitted.metrics["f1"] == pytest.approx(f1_score(y, fitted.pipeline.predict(X)))
    assert fitted.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, fitted.pipeline.predict_proba(X)[:, 1]))
    # … and not those of the training rows, nor of a holdout of them.
    X_train = train.matrix(list(cancer.feature_names), impute=False)
    assert fitted.metrics["accuracy"] != pytest.approx(accuracy_score(train.target(), fitted.pipeline.predict(X_train)))
    assert fitted.metrics != training.fit(train).metrics


@pytest.mark.parametrize(
    "thresholds,expected",
    [
        ({}, True),
        ({"roc_auc": 0.7}, True),
        ({"roc_auc": 0.7, "f1": 0.95}, False),
        ({"accuracy": 0.9}, True),
        ({"accuracy": 0.95}, False),
    ],
)
def test_evaluation_policy(thresholds, expected):
    metrics = {"accuracy": 0.9, "f1": 0.8, "roc_auc": 0.75}
    assert training.passed(metrics, thresholds) is expected


def test_a_threshold_on_an_unknown_metric_is_refused():
    with pytest.raises(InputError, match="auc"):
        training.passed({"roc_auc": 0.9}, {"auc": 0.5})


def test_a_single_class_cannot_be_learned():
    contract = DataContract(columns=(ColumnSpec(name="x"), ColumnSpec(name="y", dtype="int")), target="y")
    data = datasets.validate(datasets.parse_csv_text("x,y\n1,0\n2,0\n3,0\n4,0\n"), contract)
    with pytest.raises(InputError, match="single class"):
        training.fit(data)


def test_bad_hyperparameters_are_input_errors(cancer):
    with pytest.raises(InputError, match="hyper"):
        training.fit(cancer, hyperparameters={"no_such_knob": 1})


def _alert(value=0.5, threshold=0.2, **fields):
    return DriftDetected(
        model="m", version=1, environment="production", actor="monitor", metric="psi",
        feature="x", value=value, threshold=threshold, reference_snapshot_id="s1",
        current_snapshot_id="s2", **fields,
    )


def test_policy_asks_one_training_for_a_crossed_alert():
    alert = _alert(correlation_id="run-7")
    intents = retrain.policy(alert)
    assert len(intents) == 1
    assert intents[0].channel == retrain.CHANNEL
    assert intents[0].payload["version"] == 1
    assert intents[0].payload["reference_snapshot_id"] == "s1"
    assert intents[0].payload["correlation_id"] == "run-7"


@pytest.mark.parametrize(
    "event",
    [
        _alert(value=0.1, threshold=0.2),
        ModelApproved(model="m", version=1, actor="bob"),
    ],
    ids=["below threshold", "not an alert"],
)
def test_policy_ignores_everything_else(event):
    assert retrain.policy(event) == []


def test_at_the_threshold_is_crossed():
    assert len(retrain.policy(_alert(value=0.2, threshold=0.2))) == 1


def test_retraining_ids_are_fixed_by_the_alert():
    alert = uuid.uuid4()
    assert retrain.retraining_ids(alert) == retrain.retraining_ids(str(alert))
    trained, evaluated = retrain.retraining_ids(alert)
    assert trained != evaluated
    assert set(retrain.retraining_ids(uuid.uuid4())).isdisjoint({trained, evaluated})


def _snap(snapshot_id, dataset="plant"):
    return DataSnapshotted(
        model="m", actor="a", dataset=dataset, snapshot_id=snapshot_id, content_hash="sha256:x",
        row_count=1, contract=DataContract(columns=(ColumnSpec(name="x"),)),
    )


def test_the_newest_snapshot_of_the_dataset_before_the_alert_is_chosen():
    alert = _alert()
    stream = [_snap("s1"), _snap("other", dataset="elsewhere"), _snap("s2"), _snap("s3"), alert, _snap("later")]
    chosen = retrain.choose_snapshot(stream, str(alert.event_id), "s1")
    assert chosen.snapshot_id == "s3"


def test_choosing_needs_the_alert_and_its_reference_in_the_stream():
    from ledger.errors import NotFound

    alert = _alert()
    with pytest.raises(NotFound, match="not in its model's stream"):
        retrain.choose_snapshot([_snap("s1")], str(alert.event_id), "s1")
    with pytest.raises(NotFound, match="reference snapshot"):
        retrain.choose_snapshot([_snap("s2"), alert], str(alert.event_id), "s1")


def test_settings_from_toml_and_environment(tmp_path):
    config = tmp_path / "retrain.toml"
    config.write_text('[retrain]\nactor = "bot"\nlease_seconds = 60\nthresholds = { roc_auc = 0.8, f1 = 0.5 }\n')
    settings = retrain.Settings.load(config, {})
    assert (settings.actor, settings.lease_seconds) == ("bot", 60.0)
    assert dict(settings.thresholds) == {"roc_auc": 0.8, "f1": 0.5}
    overridden = retrain.Settings.load(config, {"LEDGER_RETRAIN_ACTOR": "env-bot", "LEDGER_RETRAIN_LEASE_SECONDS": "5"})
    assert (overridden.actor, overridden.lease_seconds) == ("env-bot", 5.0)
    assert retrain.Settings.load(None, {}).actor == "retrainer"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[retrain]\nlease_seconds = -1\n", "lease_seconds"),
        ("[retrain\n", "cannot read"),
        ("[retrain]\nthresholds = { roc_auc = 'high' }\n", "roc_auc"),
        # Found at load time, not after a training whose alert then stays dead for good.
        ("[retrain]\nthresholds = { auc = 0.7 }\n", "unknown metric.*auc.*accuracy, f1, roc_auc"),
        ("[retrain]\nthresholds = { f1 = nan }\n", "f1 must be a finite number"),
        ("[retrain]\nthresholds = [0.7]\n", "thresholds"),
        ("[retrain]\nlease_secnds = 60\n", "unknown setting.*lease_secnds"),
        ("retrain = 5\n", r"\[retrain\] must be a table"),
        ("[retrain]\nactor = ''\n", "actor"),
        ("[retrain]\nactor = 7\n", "actor"),
        ("[retrain]\nlease_seconds = nan\n", "lease_seconds"),
        ("[retrain]\nlease_seconds = inf\n", "lease_seconds"),
        ("[retrain]\nartifacts_dir = 5\n", "artifacts_dir"),
    ],
)
def test_bad_settings_are_input_errors(tmp_path, text, message):
    config = tmp_path / "retrain.toml"
    config.write_text(text)
    with pytest.raises(InputError, match=message):
        retrain.Settings.load(config, {})


def test_other_tables_of_a_shared_configuration_file_are_left_alone(tmp_path):
    config = tmp_path / "ledger.toml"
    config.write_text('[[webhook]]\nurl = "https://hooks.example.com/x"\n[retrain]\nactor = "bot"\n')
    assert retrain.Settings.load(config, {}).actor == "bot"


@pytest.mark.parametrize(
    "error,permanent",
    [
        (InputError("the snapshot has no target column"), True),
        (RuleViolation("model-retired", "model 'm' is retired"), True),
        (ConflictError("another writer appended first"), False),
    ],
    ids=["bad data", "refused by a rule", "lost a write race"],
)
def test_failed_retrainings_are_retried_only_when_retrying_can_help(error, permanent):
    class Failing(retrain.Retrainer):
        def retrain(self, alert_id, alert):
            raise error

    effect = Effect(
        id="e", consumer="retrain", event_id=str(uuid.uuid4()), channel="train", event_type="DriftDetected",
        model="m", version=1, payload={}, status="sending", attempts=1, partition=0, offset=1,
    )
    with pytest.raises(EffectFailed) as caught:
        Failing("sqlite:///unused.db").perform(effect)
    assert caught.value.permanent is permanent
    assert str(error) in caught.value.reason


def test_a_settings_file_that_is_not_text_is_an_input_error(tmp_path):
    config = tmp_path / "retrain.toml"
    config.write_bytes(b"\xb6\x00\xff binary")
    with pytest.raises(InputError, match="retrain.toml"):
        retrain.Settings.load(config, {})


def test_a_degradation_alert_asks_for_one_retraining_and_feedback_alone_for_none():
    from consumers.retrain import policy
    from ledger import samples

    alert = samples.degraded("churn", "f1b2", version=3, value=0.25, threshold=0.6)
    (intent,) = policy(alert)
    assert intent.payload["kind"] == "degradation"
    assert intent.payload["feedback_snapshot_id"] == "fb1" and intent.payload["version"] == 3
    assert policy(samples.feedback("churn", 3)) == []
    within = alert.model_copy(update={"value": 0.7})
    assert policy(within) == []


def test_learning_from_feedback_is_off_unless_the_policy_says_so(tmp_path):
    config = tmp_path / "retrain.toml"
    config.write_text("[retrain]\ninclude_feedback = true\n")
    assert retrain.Settings.load(None, {}).include_feedback is False
    assert retrain.Settings.load(config, {}).include_feedback is True
    assert retrain.Settings.load(config, {"LEDGER_RETRAIN_INCLUDE_FEEDBACK": "false"}).include_feedback is False
    config.write_text('[retrain]\ninclude_feedback = "yes"\n')
    with pytest.raises(InputError, match="include_feedback must be true or false"):
        retrain.Settings.load(config, {})
    with pytest.raises(InputError, match="LEDGER_RETRAIN_INCLUDE_FEEDBACK"):
        retrain.Settings.load(None, {"LEDGER_RETRAIN_INCLUDE_FEEDBACK": "maybe"})
