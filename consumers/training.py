"""The standard scikit-learn training pipeline and the step that records its result.

One pipeline for every model of the ledger, so a retrained version differs from its
parent only by its data::

    SimpleImputer(mean) → StandardScaler → GradientBoostingClassifier(random_state=0)

Features are the snapshot contract's numeric columns other than the target (see
:attr:`ledger.data.datasets.Dataset.feature_names`); the target is ``contract.target``.
Everything is seeded, so the same snapshot gives the same model and, with the same
library versions, the same artifact bytes.

Evaluation: on a given evaluation snapshot (the model is fitted on the whole
training snapshot), or else on a stratified 25% holdout of the training snapshot
(the model is fitted on the other 75%, and the recorded evaluation snapshot is the
training snapshot itself). Metrics: ``accuracy``, ``f1`` (of the second class for
two classes, macro-averaged otherwise) and ``roc_auc`` (one-vs-rest for more than
two classes). The evaluation passes when every metric named in the thresholds
reaches its minimum; the default policy is ``roc_auc ≥ 0.7``.

Artifacts are joblib files under ``LEDGER_ARTIFACTS_DIR`` (default
``./.ledger/artifacts``): ``<model>/v<N>-<first 12 hex of sha256>.joblib``. The
hash in the name means a file is never overwritten with different bytes, whoever
trains the same version number.

From Python, for a first, manual training::

    from consumers.training import train_and_record
    with Ledger.open() as ledger:
        trained, evaluated = train_and_record(ledger, "churn", "churn-data-3f2a…", actor="alice")
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ledger import config, rules
from ledger.data import datasets
from ledger.append import Accepted
from ledger.errors import InputError, NotFound, RuleViolation
from ledger.events import DataSnapshotted, ModelEvaluated, ModelTrained
from ledger.files import write_once

PIPELINE_ID = "sklearn-impute-scale-gbc-v1"
DEFAULT_THRESHOLDS: dict[str, float] = {"roc_auc": 0.7}
METRICS: tuple[str, ...] = ("accuracy", "f1", "roc_auc")
"""What :func:`metrics_of` reports, so what an evaluation policy may name."""
HOLDOUT = 0.25
RANDOM_STATE = 0
DEFAULT_HYPERPARAMETERS: dict[str, object] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "max_depth": 3,
}
_VERSION_RETRIES = 5


def default_artifacts_dir() -> Path:
    return Path(os.environ.get("LEDGER_ARTIFACTS_DIR") or config.DEFAULT_DIR / "artifacts")


def code_ref() -> str:
    try:
        own = metadata.version("model-lifecycle-ledger")
    except metadata.PackageNotFoundError:  # running from a plain checkout
        own = "unknown"
    import sklearn

    return f"consumers.training:{PIPELINE_ID} ledger={own} scikit-learn={sklearn.__version__}"


def build_pipeline(hyperparameters: Mapping[str, object]):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        model = GradientBoostingClassifier(random_state=RANDOM_STATE, **hyperparameters)
    except TypeError as exc:
        raise InputError(f"bad hyper-parameters {dict(hyperparameters)}: {exc}") from exc
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="mean")),
            ("scale", StandardScaler()),
            ("model", model),
        ]
    )


def metrics_of(pipeline, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    classes = pipeline.classes_
    predicted = pipeline.predict(X)
    proba = pipeline.predict_proba(X)
    try:
        if len(classes) == 2:
            f1 = f1_score(y, predicted, average="binary", pos_label=classes[1])
            auc = roc_auc_score(y, proba[:, 1])
        else:
            f1 = f1_score(y, predicted, average="macro")
            auc = roc_auc_score(y, proba, multi_class="ovr", labels=classes)
    except ValueError as exc:
        raise InputError(f"cannot evaluate: {exc}") from exc
    return {"accuracy": float(accuracy_score(y, predicted)), "f1": float(f1), "roc_auc": float(auc)}


@dataclass(frozen=True)
class Fitted:
    pipeline: object
    features: tuple[str, ...]
    metrics: dict[str, float]
    hyperparameters: dict[str, object]


def fit(
    train: datasets.Dataset,
    evaluation: datasets.Dataset | None = None,
    *,
    hyperparameters: Mapping[str, object] | None = None,
) -> Fitted:
    """Fit the standard pipeline on ``train``; score it on ``evaluation`` or a holdout."""
    from sklearn.model_selection import train_test_split

    params = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    features = train.feature_names
    if not features:
        raise InputError("the data contract has no numeric feature column to train on")
    X = train.matrix(features, impute=False)  # the pipeline's imputer learns the means
    y = train.target()
    if len(set(y.tolist())) < 2:
        raise InputError("the training data has a single class: nothing to learn")
    pipeline = build_pipeline(params)
    if evaluation is None:
        try:
            X_fit, X_test, y_fit, y_test = train_test_split(
                X, y, test_size=HOLDOUT, random_state=RANDOM_STATE, stratify=y
            )
        except ValueError as exc:
            raise InputError(f"cannot split a holdout from the training data: {exc}") from exc
        evaluated_on = {"evaluation": f"stratified holdout {HOLDOUT:g} of the training snapshot"}
    else:
        missing = [f for f in features if f not in evaluation.columns]
        if missing:
            raise InputError(f"the evaluation snapshot lacks feature(s) {', '.join(missing)}")
        X_fit, y_fit = X, y
        X_test, y_test = evaluation.matrix(features, impute=False), evaluation.target()
        evaluated_on = {"evaluation": "evaluation snapshot"}
    try:
        pipeline.fit(X_fit, y_fit)
    except ValueError as exc:
        raise InputError(f"training failed: {exc}") from exc
    recorded = {
        **params,
        "pipeline": PIPELINE_ID,
        "random_state": RANDOM_STATE,
        "features": list(features),
        "target": train.contract.target,
        **evaluated_on,
    }
    return Fitted(pipeline, features, metrics_of(pipeline, X_test, y_test), recorded)


def artifact_bytes(pipeline) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def save_artifact(content: bytes, model: str, version: int, root: str | Path | None = None) -> tuple[str, str]:
    """Write the artifact once; return ``(file URI, "sha256:<hex>")``."""
    digest = hashlib.sha256(content).hexdigest()
    folder = (Path(root) if root is not None else default_artifacts_dir()) / model
    target = (folder / f"v{version}-{digest[:12]}.joblib").resolve()
    write_once(target, content, "the model artifact")
    return target.as_uri(), f"sha256:{digest}"


def find_snapshot(ledger, model: str, snapshot_id: str) -> DataSnapshotted:
    found = None
    for event in ledger.events(model):
        if isinstance(event, DataSnapshotted) and event.snapshot_id == snapshot_id:
            found = event
    if found is None:
        raise NotFound(f"model {model!r} has no snapshot {snapshot_id!r}")
    return found


def next_version(state: rules.ModelState) -> int:
    return max(state.versions, default=0) + 1


def check_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    """An evaluation policy as given, checked before any training: known metrics,
    finite minimums (a NaN minimum would fail every evaluation, silently)."""
    unknown = sorted(set(thresholds) - set(METRICS))
    if unknown:
        raise InputError(f"threshold(s) on unknown metric(s) {', '.join(unknown)}; metrics are {', '.join(METRICS)}")
    checked = {}
    for metric, minimum in thresholds.items():
        try:
            checked[metric] = float(minimum)
        except (TypeError, ValueError):
            raise InputError(f"the threshold on {metric} must be a number, not {minimum!r}") from None
        if not math.isfinite(checked[metric]):
            raise InputError(f"the threshold on {metric} must be a finite number, not {minimum!r}")
    return checked


def passed(metrics: Mapping[str, float], thresholds: Mapping[str, float]) -> bool:
    unknown = [m for m in thresholds if m not in metrics]
    if unknown:
        raise InputError(f"threshold(s) on unknown metric(s) {', '.join(unknown)}; metrics are {', '.join(metrics)}")
    return all(metrics[m] >= minimum for m, minimum in thresholds.items())


@dataclass(frozen=True)
class Result:
    trained: Accepted
    evaluated: Accepted

    @property
    def version(self) -> int:
        return self.trained.event.version


def record(
    ledger,
    fitted: Fitted,
    *,
    model: str,
    actor: str,
    snapshot_id: str,
    evaluation_snapshot_id: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    parent_version: int | None = None,
    trigger: str = "manual",
    trigger_alert_id: str | None = None,
    causation_id: str | None = None,
    correlation_id: str | None = None,
    trained_event_id: uuid.UUID | None = None,
    evaluated_event_id: uuid.UUID | None = None,
    artifacts_dir: str | Path | None = None,
    after_artifact: Callable[[str], None] | None = None,
) -> Result:
    """Save the artifact and append ``ModelTrained`` + ``ModelEvaluated`` in one atomic
    append, as the next free version. If another writer takes that version number
    first, the artifact is saved again under the next number and the append retried.
    ``after_artifact(uri)`` is called once the artifact is on disk, before anything
    is appended (the crash-test hook)."""
    thresholds = check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    content = artifact_bytes(fitted.pipeline)
    envelope = {"actor": actor, "model": model, "causation_id": causation_id, "correlation_id": correlation_id}
    for _ in range(_VERSION_RETRIES):
        version = next_version(ledger.state(model))
        uri, digest = save_artifact(content, model, version, artifacts_dir)
        if after_artifact is not None:
            after_artifact(uri)
        trained = ModelTrained(
            **envelope,
            **({"event_id": trained_event_id} if trained_event_id else {}),
            version=version,
            snapshot_ids=(snapshot_id,),
            code_ref=code_ref(),
            hyperparameters=fitted.hyperparameters,
            artifact_uri=uri,
            artifact_hash=digest,
            parent_version=parent_version,
            trigger=trigger,
            trigger_alert_id=trigger_alert_id,
        )
        evaluated = ModelEvaluated(
            **envelope,
            **({"event_id": evaluated_event_id} if evaluated_event_id else {}),
            version=version,
            evaluation_snapshot_id=evaluation_snapshot_id or snapshot_id,
            metrics=fitted.metrics,
            thresholds=thresholds,
            passed=passed(fitted.metrics, thresholds),
        )
        try:
            accepted = ledger.emit_many([trained, evaluated])
        except RuleViolation as exc:
            if exc.rule == rules.VERSION_UNIQUE:
                continue
            raise
        return Result(*accepted)
    raise RuleViolation(rules.VERSION_UNIQUE, f"could not claim a free version of {model!r} after {_VERSION_RETRIES} tries")


def train_and_record(
    ledger,
    model: str,
    snapshot_id: str,
    actor: str,
    *,
    evaluation_snapshot_id: str | None = None,
    hyperparameters: Mapping[str, object] | None = None,
    **recording,
) -> Result:
    """Train the standard pipeline on a registered snapshot and record the new
    version and its evaluation. ``recording`` takes :func:`record`'s keywords
    (thresholds, parent_version, trigger, causation and event ids, artifacts_dir)."""
    if recording.get("thresholds") is not None:
        check_thresholds(recording["thresholds"])  # before minutes of training, not after
    snapshot = find_snapshot(ledger, model, snapshot_id)
    evaluation = None
    if evaluation_snapshot_id and evaluation_snapshot_id != snapshot_id:
        evaluation = datasets.load_snapshot(find_snapshot(ledger, model, evaluation_snapshot_id))
    fitted = fit(datasets.load_snapshot(snapshot), evaluation, hyperparameters=hyperparameters)
    return record(
        ledger,
        fitted,
        model=model,
        actor=actor,
        snapshot_id=snapshot_id,
        evaluation_snapshot_id=evaluation_snapshot_id,
        **recording,
    )
