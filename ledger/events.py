"""The lifecycle events: frozen, past-tense, typed.

This module is the domain vocabulary. It imports only the standard library and
pydantic: no Kafka, no Avro, no SQL. The Avro schemas in ``schemas/`` mirror these
classes field for field; ``tests/unit/test_schemas.py`` holds the two together.

An event is created by a service as a *draft* (``sequence``, ``prev_hash`` and
``recorded_at`` unset); the append path fills those in when it accepts it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event of every model stream."""

SHA256_HEX = "[0-9a-f]{64}"
"""How every hash in the ledger is written: SHA-256, 64 lowercase hex digits."""

ModelName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$"),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(max_length=4096)]
Version = Annotated[int, Field(ge=1, le=2**31 - 1, strict=True)]
"""Strict: ``"version": true`` or ``"1"`` in a JSON file is a mistake, not version 1."""
Number = Annotated[float, Field(strict=True)]
"""Strict: ``"0.9"`` or ``true`` in a JSON file is a mistake, not a number (an integer
is a number). Non-finite values are refused for new events by
:func:`ledger.rules.admit`, not here: stored events stay readable as written."""
Count = Annotated[int, Field(ge=0, strict=True)]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone (e.g. 2026-03-03T10:00:00Z)")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        # e.g. 9999-12-31T23:59:59-14:00: in UTC it falls after year 9999.
        raise ValueError("the time is out of range: in UTC it falls outside years 1 to 9999") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- nested value types -------------------------------------------------------


class ColumnSpec(_Frozen):
    """One column of a data contract."""

    name: Name
    dtype: Literal["float", "int", "bool", "string", "category", "datetime"] = "float"
    unit: str | None = None
    missing: Literal["reject", "allow", "impute_mean"] = "reject"
    """What a consumer of this data does with a missing value."""
    minimum: Number | None = None
    maximum: Number | None = None


class DataContract(_Frozen):
    """What a snapshot promises about its data: columns, units, sampling."""

    columns: tuple[ColumnSpec, ...]
    sampling: str = ""
    target: str | None = None

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: tuple[ColumnSpec, ...]) -> tuple[ColumnSpec, ...]:
        names = [c.name for c in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate column names in data contract: {duplicates}")
        return columns


class FeatureStats(_Frozen):
    """Summary of one numeric feature, kept so drift can be computed later
    without the original rows: the quantiles approximate its distribution."""

    name: Name
    count: Count
    missing: Count = 0
    mean: Number | None = None
    std: Number | None = None
    minimum: Number | None = None
    maximum: Number | None = None
    quantiles: tuple[Number, ...] = ()
    """Values at evenly spaced probabilities 0, 1/(n-1), …, 1."""


class FeatureDrift(_Frozen):
    feature: Name
    psi: Number
    ks: Number


# --- the events ---------------------------------------------------------------


class Event(_Frozen):
    """The envelope every lifecycle event shares."""

    event_type: ClassVar[str]
    """Avro record name and the value of the ``event_type`` envelope field."""
    cli_name: ClassVar[str]
    """Name of the event type on the command line (``ledger emit TYPE``)."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    model: ModelName
    version: Version | None = None
    actor: Name
    recorded_by: Name | None = None
    """The authenticated principal that recorded the event on behalf of ``actor``
    (a pipeline runner of the ledger service with the ``act-as`` role); None when
    the actor recorded it. Only the service sets it: on direct log access the actor
    is declared, not authenticated, and this stays None. Added in schema version 4."""
    occurred_at: UtcDatetime = Field(default_factory=utcnow)
    recorded_at: UtcDatetime | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    sequence: int | None = Field(default=None, ge=1)
    prev_hash: str | None = Field(default=None, pattern=f"^{SHA256_HEX}$")

    @property
    def is_draft(self) -> bool:
        return self.sequence is None

    def payload(self) -> dict:
        """The fields specific to this event type (everything but the envelope)."""
        envelope = set(Event.model_fields)
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in envelope}


class DataSnapshotted(Event):
    event_type: ClassVar[str] = "DataSnapshotted"
    cli_name: ClassVar[str] = "snapshot"

    dataset: Name
    snapshot_id: Name
    content_hash: Name
    row_count: Count
    uri: str | None = None
    contract: DataContract
    feature_stats: tuple[FeatureStats, ...] = ()


class ModelTrained(Event):
    event_type: ClassVar[str] = "ModelTrained"
    cli_name: ClassVar[str] = "train"

    version: Version
    snapshot_ids: tuple[Name, ...] = Field(min_length=1)
    code_ref: Name
    hyperparameters: dict[str, str] = Field(default_factory=dict)
    artifact_uri: Name
    artifact_hash: Name
    parent_version: Version | None = None
    trigger: Literal["manual", "drift", "schedule", "degradation"] = "manual"
    trigger_alert_id: str | None = None
    """Event id of the alert (``DriftDetected`` or ``PerformanceDegraded``) that
    caused this retraining."""

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _stringify(cls, value):
        # Hyper-parameters arrive as JSON numbers, booleans, lists…; the log keeps
        # them as their JSON text (strings as they are), which makes this
        # validator idempotent: decoding a stored event does not re-encode it.
        if isinstance(value, dict):
            import json

            return {
                str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                for k, v in value.items()
            }
        return value


class ModelEvaluated(Event):
    event_type: ClassVar[str] = "ModelEvaluated"
    cli_name: ClassVar[str] = "evaluate"

    version: Version
    evaluation_snapshot_id: Name
    metrics: dict[str, Number]
    thresholds: dict[str, Number] = Field(default_factory=dict)
    """Minimum acceptable value per metric (the policy the evaluation was held to): a
    metric meets its threshold when it is at least that value. A metric without a
    threshold is recorded for information and decides nothing."""
    passed: StrictBool
    """Whether every threshold is met; the ledger refuses a ``passed`` that
    contradicts the numbers (:func:`ledger.rules.admit`). Strict: ``"yes"`` or ``1``
    in a JSON file is a mistake, not true."""


class ModelApproved(Event):
    event_type: ClassVar[str] = "ModelApproved"
    cli_name: ClassVar[str] = "approve"

    version: Version
    reason: Text = ""


class ApprovalRejected(Event):
    event_type: ClassVar[str] = "ApprovalRejected"
    cli_name: ClassVar[str] = "reject"

    version: Version
    reason: Text = ""


class ModelDeployed(Event):
    event_type: ClassVar[str] = "ModelDeployed"
    cli_name: ClassVar[str] = "deploy"

    version: Version
    environment: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")]
    replaced_version: Version | None = None
    """Set by the ledger: the version this deployment displaced in that environment."""
    traffic_percent: Annotated[int, Field(ge=1, le=100, strict=True)] = 100
    """Share of the environment's traffic this version serves (a canary serves part
    of it). Added in schema version 2; version 1 events read as 100."""


class DriftDetected(Event):
    event_type: ClassVar[str] = "DriftDetected"
    cli_name: ClassVar[str] = "drift"

    version: Version
    environment: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")]
    metric: Literal["psi", "ks"]
    feature: str | None = None
    value: Number
    threshold: Number
    reference_snapshot_id: Name
    current_snapshot_id: str | None = None
    feature_drift: tuple[FeatureDrift, ...] = ()

    @property
    def crossed(self) -> bool:
        return self.value >= self.threshold


Environment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")]


class FeedbackRecorded(Event):
    """Outcomes observed in the field for a deployed version over a window: how
    many labelled predictions, how many alarms, how many alarms were confirmed,
    and the metrics computed from them. The data is a registered snapshot; the
    reporter (a technician, a labelling job) is the actor. The count and range
    checks are lifecycle rules (:func:`ledger.rules.feedback_problems`)."""

    event_type: ClassVar[str] = "FeedbackRecorded"
    cli_name: ClassVar[str] = "feedback"

    version: Version
    environment: Environment
    window_start: UtcDatetime
    window_end: UtcDatetime
    predictions: int
    """Predictions whose outcome is known (labelled)."""
    alarms: int
    """Labelled predictions of the positive class (the alarms raised)."""
    confirmed: int
    """Alarms the outcome confirmed (true positives)."""
    unlabelled: int = 0
    """Predictions in the data whose outcome is not known yet."""
    metrics: dict[str, float]
    snapshot_id: Name
    """The registered snapshot holding the joined predictions and outcomes."""


class PerformanceDegraded(Event):
    """A field metric of a deployed version crossed its threshold: the
    feedback counterpart of ``DriftDetected``, and an alert like it (retraining
    and notifications react to both)."""

    event_type: ClassVar[str] = "PerformanceDegraded"
    cli_name: ClassVar[str] = "degraded"

    version: Version
    environment: Environment
    metric: Name
    value: float
    threshold: float
    bound: Literal["minimum", "maximum"] = "minimum"
    """``minimum``: the alert fires below the threshold; ``maximum``: above it."""
    threshold_source: Literal["evaluation", "field-policy"] = "evaluation"
    feedback_event_id: str
    """Event id of the ``FeedbackRecorded`` whose metric crossed the threshold."""
    snapshot_id: str | None = None
    """The feedback data's snapshot (what a retraining may learn from)."""

    @property
    def crossed(self) -> bool:
        return self.value < self.threshold if self.bound == "minimum" else self.value > self.threshold


class ModelRetired(Event):
    event_type: ClassVar[str] = "ModelRetired"
    cli_name: ClassVar[str] = "retire"

    reason: Text = ""


EVENT_CLASSES: tuple[type[Event], ...] = (
    DataSnapshotted,
    ModelTrained,
    ModelEvaluated,
    ModelApproved,
    ApprovalRejected,
    ModelDeployed,
    DriftDetected,
    ModelRetired,
    FeedbackRecorded,
    PerformanceDegraded,
)
BY_TYPE: dict[str, type[Event]] = {cls.event_type: cls for cls in EVENT_CLASSES}
BY_CLI_NAME: dict[str, type[Event]] = {cls.cli_name: cls for cls in EVENT_CLASSES}
