"""Ready-made drafts of a model's lifecycle, for examples, benchmarks and tests.

    for draft in lifecycle("churn"):
        ledger.emit(draft)
"""

from __future__ import annotations

from ledger.events import (
    ColumnSpec,
    DataContract,
    DataSnapshotted,
    DriftDetected,
    FeatureStats,
    FeedbackRecorded,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
    ModelTrained,
    PerformanceDegraded,
)

CONTRACT = DataContract(
    columns=(
        ColumnSpec(name="air_temperature", dtype="float", unit="K"),
        ColumnSpec(name="rotational_speed", dtype="float", unit="rpm", missing="impute_mean"),
        ColumnSpec(name="failure", dtype="int"),
    ),
    sampling="one row per machine per hour",
    target="failure",
)


def snapshot(model: str, snapshot_id: str = "s1", actor: str = "etl", contract: DataContract = CONTRACT, **extra) -> DataSnapshotted:
    return DataSnapshotted(
        model=model,
        actor=actor,
        dataset="sensors",
        snapshot_id=snapshot_id,
        content_hash=f"sha256:{snapshot_id}",
        row_count=1000,
        uri=f"file:///data/{snapshot_id}.csv",
        contract=contract,
        feature_stats=(
            FeatureStats(name="air_temperature", count=1000, mean=300.0, std=2.0, quantiles=(295.0, 300.0, 305.0)),
        ),
        **extra,
    )


def trained(model: str, version: int = 1, actor: str = "alice", snapshots=("s1",), **extra) -> ModelTrained:
    return ModelTrained(
        model=model,
        version=version,
        actor=actor,
        snapshot_ids=snapshots,
        code_ref="git:0123abc",
        hyperparameters={"n_estimators": 100, "max_depth": 3},
        artifact_uri=f"file:///artifacts/{model}/v{version}.joblib",
        artifact_hash=f"sha256:{model}{version}",
        **extra,
    )


def evaluated(model: str, version: int = 1, actor: str = "ci", passed: bool = True, snapshot_id: str = "s1") -> ModelEvaluated:
    return ModelEvaluated(
        model=model,
        version=version,
        actor=actor,
        evaluation_snapshot_id=snapshot_id,
        metrics={"roc_auc": 0.91 if passed else 0.55},
        thresholds={"roc_auc": 0.7},
        passed=passed,
    )


def approved(model: str, version: int = 1, actor: str = "bob") -> ModelApproved:
    return ModelApproved(model=model, version=version, actor=actor, reason="metrics above policy")


def deployed(model: str, version: int = 1, environment: str = "production", actor: str = "deployer") -> ModelDeployed:
    return ModelDeployed(model=model, version=version, actor=actor, environment=environment)


def drift(model: str, version: int = 1, environment: str = "production", value: float = 0.4) -> DriftDetected:
    return DriftDetected(
        model=model,
        version=version,
        actor="monitor",
        environment=environment,
        metric="psi",
        feature="air_temperature",
        value=value,
        threshold=0.2,
        reference_snapshot_id="s1",
    )


def feedback(
    model: str,
    version: int = 1,
    environment: str = "production",
    snapshot_id: str = "fb1",
    actor: str = "technicians",
    **fields,
) -> FeedbackRecorded:
    """200 labelled predictions, 40 alarms of which 10 were real failures."""
    values = {
        "window_start": "2026-03-01T00:00:00Z",
        "window_end": "2026-03-08T00:00:00Z",
        "predictions": 200,
        "alarms": 40,
        "confirmed": 10,
        "unlabelled": 5,
        "metrics": {"precision": 0.25, "recall": 0.8333, "false_alarm_rate": 0.1604, "accuracy": 0.835},
        **fields,
    }
    return FeedbackRecorded(
        model=model, version=version, actor=actor, environment=environment, snapshot_id=snapshot_id, **values
    )


def degraded(
    model: str,
    feedback_event_id: str,
    version: int = 1,
    environment: str = "production",
    value: float = 0.25,
    threshold: float = 0.5,
) -> PerformanceDegraded:
    return PerformanceDegraded(
        model=model,
        version=version,
        actor="technicians",
        environment=environment,
        metric="precision",
        value=value,
        threshold=threshold,
        threshold_source="field-policy",
        feedback_event_id=feedback_event_id,
        snapshot_id="fb1",
    )


def retired(model: str, version: int | None = 1, actor: str = "owner") -> ModelRetired:
    return ModelRetired(model=model, version=version, actor=actor, reason="superseded")


def lifecycle(model: str) -> list:
    """snapshot → train → evaluate → approve (another actor) → deploy."""
    return [snapshot(model), trained(model), evaluated(model), approved(model), deployed(model)]
