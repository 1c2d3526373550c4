"""Field feedback, pure: the feedback data contract, joining predictions with
outcomes, the classifier metrics of what was observed, and which thresholds
they cross.

No files and no log here (:mod:`ledger.data.field` reads, stores and records).

A feedback file (or the join of a predictions file and an outcomes file on the
contract's key) holds one row per prediction the deployed version made: the key,
the prediction, the observed outcome (empty while it is not known yet: labels
arrive weeks after predictions), optionally a score, a timestamp and any feature
columns (which a retraining may learn from). Rows without an outcome are counted
as ``unlabelled`` and left out of the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.data.contracts import NUMERIC_DTYPES, Dataset, RawTable
from ledger.errors import InputError
from ledger.events import ColumnSpec, DataContract, ModelEvaluated

FIELD_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "accuracy", "false_alarm_rate", "roc_auc")
"""What :func:`measure` can report (``roc_auc`` only with a score column)."""
LOWER_IS_BETTER = frozenset({"false_alarm_rate"})


class FeedbackContract(BaseModel):
    """Which columns hold the join key, the prediction, the outcome (and
    optionally the score and the prediction time), plus the data contract of the
    whole file. ``positive`` is the value meaning "alarm" / "failure"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: tuple[ColumnSpec, ...] = (
        ColumnSpec(name="prediction_id", dtype="string"),
        ColumnSpec(name="predicted_at", dtype="datetime", missing="allow"),
        ColumnSpec(name="prediction", dtype="int"),
        ColumnSpec(name="outcome", dtype="int", missing="allow"),
    )
    key: str = "prediction_id"
    prediction: str = "prediction"
    outcome: str = "outcome"
    score: str | None = None
    timestamp: str | None = "predicted_at"
    positive: float = 1.0
    sampling: str = Field(default="one row per prediction served, with its observed outcome")

    @model_validator(mode="after")
    def _roles_are_columns(self) -> FeedbackContract:
        specs = {c.name: c for c in self.columns}
        roles = {"key": self.key, "prediction": self.prediction, "outcome": self.outcome}
        if self.score:
            roles["score"] = self.score
        if self.timestamp:
            roles["timestamp"] = self.timestamp
        absent = [f"{role} {name!r}" for role, name in roles.items() if name not in specs]
        if absent:
            raise ValueError(f"not among the contract's columns: {', '.join(absent)}")
        for role in ("prediction", "outcome", "score"):
            name = roles.get(role)
            if name and specs[name].dtype not in NUMERIC_DTYPES:
                raise ValueError(f"the {role} column {name!r} must be int, float or bool, not {specs[name].dtype}")
        if self.timestamp and specs[self.timestamp].dtype != "datetime":
            raise ValueError(f"the timestamp column {self.timestamp!r} must be a datetime")
        if specs[self.outcome].missing != "allow":
            raise ValueError(f"the outcome column {self.outcome!r} must allow missing values (labels arrive late)")
        return self

    def data_contract(self) -> DataContract:
        """The contract the feedback snapshot is registered under (target: the outcome)."""
        return DataContract(columns=self.columns, sampling=self.sampling, target=self.outcome)


def join(predictions: RawTable, outcomes: RawTable, contract: FeedbackContract) -> RawTable:
    """One table of the contract's columns: every prediction, with its outcome
    where the outcomes file has one (empty otherwise). Keys must be unique in
    each file, and every outcome must name a prediction (an outcome for an unknown
    key is a wrong key, not a late label)."""
    key = contract.key
    for table in (predictions, outcomes):
        if key not in table.names:
            raise InputError(f"{table.source}: no join key column {key!r}")
    if contract.outcome not in outcomes.names:
        raise InputError(f"{outcomes.source}: no outcome column {contract.outcome!r}")

    def by_key(table: RawTable) -> dict[str, int]:
        position = table.names.index(key)
        index: dict[str, int] = {}
        for r, row in enumerate(table.rows):
            value = row[position].strip()
            if value in index:
                raise InputError(f"{table.source}, line {table.lines[r]}: key {value!r} appears twice")
            index[value] = r
        return index

    predicted, observed = by_key(predictions), by_key(outcomes)
    unknown = sorted(set(observed) - set(predicted))
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise InputError(f"{outcomes.source}: {len(unknown)} outcome(s) name no prediction: {shown}")
    sources: list[tuple[RawTable, int]] = []
    for spec in contract.columns:
        if spec.name == contract.outcome or (spec.name not in predictions.names and spec.name in outcomes.names):
            sources.append((outcomes, outcomes.names.index(spec.name)))
        elif spec.name in predictions.names:
            sources.append((predictions, predictions.names.index(spec.name)))
        else:
            raise InputError(f"column {spec.name!r} is in neither {predictions.source} nor {outcomes.source}")
    rows = []
    key_at = predictions.names.index(key)
    for row in predictions.rows:
        label_row = observed.get(row[key_at].strip())
        cells = []
        for table, position in sources:
            if table is predictions:
                cells.append(row[position])
            else:
                cells.append(outcomes.rows[label_row][position] if label_row is not None else "")
        rows.append(tuple(cells))
    return RawTable(
        source=f"{predictions.source} joined with {outcomes.source}",
        names=tuple(s.name for s in contract.columns),
        units=tuple(table.units[position] for table, position in sources),
        rows=tuple(rows),
        lines=predictions.lines,
    )


@dataclass(frozen=True)
class FieldMeasure:
    predictions: int
    alarms: int
    confirmed: int
    unlabelled: int
    metrics: dict[str, float]
    window_start: datetime | None
    window_end: datetime | None


def _utc(value: datetime, column: str) -> datetime:
    if value.tzinfo is None:
        raise InputError(f"column {column!r}: timestamps must carry a time zone (e.g. 2026-03-03T10:00:00Z)")
    return value.astimezone(timezone.utc)


def measure(data: Dataset, contract: FeedbackContract) -> FieldMeasure:
    """Counts and classifier metrics of the labelled rows (scikit-learn's
    definitions). A metric that is undefined on this data (precision without a
    single alarm, recall without a single real failure, ROC AUC on one class) is
    left out rather than reported as 0."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

    outcome = np.asarray(data.columns[contract.outcome].values, dtype=float)
    prediction = np.asarray(data.columns[contract.prediction].values, dtype=float)
    labelled = ~np.isnan(outcome)
    if np.isnan(prediction).any():
        raise InputError(f"column {contract.prediction!r}: every row must hold the prediction that was served")
    if not labelled.any():
        raise InputError(f"no row has an outcome in column {contract.outcome!r}: nothing to measure yet")
    y_true = outcome[labelled] == contract.positive
    y_pred = prediction[labelled] == contract.positive
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(y_true, y_pred, labels=[False, True]).ravel())
    metrics: dict[str, float] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    if tp + fp:
        metrics["precision"] = float(precision_score(y_true, y_pred, zero_division=0))
    if tp + fn:
        metrics["recall"] = float(recall_score(y_true, y_pred, zero_division=0))
    if tp + fp and tp + fn:
        metrics["f1"] = float(f1_score(y_true, y_pred, zero_division=0))
    if fp + tn:
        metrics["false_alarm_rate"] = fp / (fp + tn)
    if contract.score:
        score = np.asarray(data.columns[contract.score].values, dtype=float)[labelled]
        if not np.isnan(score).any() and y_true.any() and not y_true.all():
            metrics["roc_auc"] = float(roc_auc_score(y_true, score))
    start = end = None
    if contract.timestamp:
        times = [_utc(t, contract.timestamp) for t in data.columns[contract.timestamp].values if t is not None]
        if times:
            start, end = min(times), max(times)
    return FieldMeasure(
        predictions=int(labelled.sum()),
        alarms=tp + fp,
        confirmed=tp,
        unlabelled=int((~labelled).sum()),
        metrics=metrics,
        window_start=start,
        window_end=end,
    )


# --- thresholds ----------------------------------------------------------------


@dataclass(frozen=True)
class FieldPolicy:
    """Stricter field bounds, from configuration: ``minimums`` (e.g. precision
    0.6) and ``maximums`` (e.g. false_alarm_rate 0.2)."""

    minimums: Mapping[str, float] = field(default_factory=dict)
    maximums: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Mapping, source: str = "the field policy") -> FieldPolicy:
        unknown = sorted(set(table) - {"minimums", "maximums"})
        if unknown:
            raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)} in [feedback]; known: maximums, minimums")
        bounds = {}
        for kind in ("minimums", "maximums"):
            given = table.get(kind, {})
            if not isinstance(given, Mapping):
                raise InputError(f"{source}: {kind} must be a table of metric = bound, e.g. {{ precision = 0.6 }}")
            checked = {}
            for metric, bound in given.items():
                if metric not in FIELD_METRICS:
                    raise InputError(f"{source}: unknown field metric {metric!r}; metrics are {', '.join(FIELD_METRICS)}")
                if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                    raise InputError(f"{source}: the {kind[:-1]} of {metric} must be a finite number, not {bound!r}")
                checked[metric] = float(bound)
            bounds[kind] = checked
        return cls(bounds["minimums"], bounds["maximums"])


@dataclass(frozen=True)
class Check:
    metric: str
    threshold: float
    bound: Literal["minimum", "maximum"]
    source: Literal["evaluation", "field-policy"]

    def crossed(self, value: float) -> bool:
        return value < self.threshold if self.bound == "minimum" else value > self.threshold

    def shortfall(self, value: float) -> float:
        """How far past the threshold, relative to it (to pick the worst)."""
        gap = self.threshold - value if self.bound == "minimum" else value - self.threshold
        return gap / max(abs(self.threshold), 1e-9)


def checks(evaluation: ModelEvaluated | None, policy: FieldPolicy | None = None) -> list[Check]:
    """The bounds a version's field metrics are held to: its latest evaluation's
    thresholds (minimums the version was approved against), and the field
    policy's where stricter (or where the evaluation set none)."""
    policy = policy or FieldPolicy()
    found: dict[tuple[str, str], Check] = {}
    if evaluation is not None:
        for metric, minimum in evaluation.thresholds.items():
            found[(metric, "minimum")] = Check(metric, float(minimum), "minimum", "evaluation")
    for metric, minimum in dict(policy.minimums).items():
        known = found.get((metric, "minimum"))
        if known is None or minimum > known.threshold:
            found[(metric, "minimum")] = Check(metric, minimum, "minimum", "field-policy")
    for metric, maximum in dict(policy.maximums).items():
        found[(metric, "maximum")] = Check(metric, maximum, "maximum", "field-policy")
    return sorted(found.values(), key=lambda c: (c.metric, c.bound))


@dataclass(frozen=True)
class Verdict:
    crossed: list[tuple[Check, float]]
    """Every check the metrics crossed, worst first."""
    unmeasured: list[Check]
    """Checks on metrics this feedback could not measure (e.g. roc_auc without scores)."""
    held_to: list[Check] = field(default_factory=list)

    @property
    def worst(self) -> tuple[Check, float] | None:
        return self.crossed[0] if self.crossed else None


def judge(metrics: Mapping[str, float], held_to: list[Check]) -> Verdict:
    crossed, unmeasured = [], []
    for check in held_to:
        value = metrics.get(check.metric)
        if value is None:
            unmeasured.append(check)
        elif check.crossed(value):
            crossed.append((check, value))
    crossed.sort(key=lambda cv: (-cv[0].shortfall(cv[1]), cv[0].metric))
    return Verdict(crossed, unmeasured, list(held_to))


# --- learning from feedback ------------------------------------------------------


def with_outcomes(train: Dataset, feedback: Dataset) -> Dataset:
    """``train``'s rows followed by the labelled feedback rows, under ``train``'s
    contract: the feedback's outcome becomes the target, its feature columns must
    be the training features in the same units (otherwise there is nothing the
    pipeline could learn from them, and saying so beats training on half)."""
    from ledger.data.contracts import _cell, validate

    target = train.contract.target
    outcome = feedback.contract.target
    if not target or not outcome:
        raise InputError("learning from feedback needs a target in the training data and an outcome in the feedback")
    rows: list[tuple[str, ...]] = []
    specs = train.contract.columns
    for r in range(train.row_count):
        rows.append(tuple(_cell(s, train.columns[s.name].values[r]) for s in specs))
    sources = []
    for spec in specs:
        name = outcome if spec.name == target else spec.name
        column = feedback.columns.get(name)
        if column is None:
            raise InputError(f"the feedback data has no column {spec.name!r} of the training data: it cannot be learnt from")
        if spec.name != target and (column.spec.unit or None) != (spec.unit or None):
            raise InputError(
                f"feedback column {name!r} is in {column.spec.unit or 'no unit'}, the training data in {spec.unit or 'no unit'}"
            )
        sources.append(column)
    labels = np.asarray(feedback.columns[outcome].values, dtype=float)
    added = 0
    for r in range(feedback.row_count):
        if np.isnan(labels[r]):
            continue  # not labelled yet: nothing to learn
        rows.append(tuple(_cell(spec, column.values[r]) for spec, column in zip(specs, sources, strict=True)))
        added += 1
    if not added:
        raise InputError("the feedback holds no labelled row to learn from")
    table = RawTable(
        source="training data with labelled feedback",
        names=tuple(s.name for s in specs),
        units=tuple(s.unit for s in specs),
        rows=tuple(rows),
        lines=tuple(range(2, len(rows) + 2)),
    )
    return validate(table, train.contract)
