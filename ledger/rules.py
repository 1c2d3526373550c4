"""The lifecycle rules: a pure state machine per model stream.

``check(state, event)`` raises :class:`RuleViolation` naming the broken rule, or
returns the event to record (with fields the ledger derives, such as the version a
deployment replaces). ``apply(state, event)`` folds an accepted event into a new
state. No I/O here: the append path and the tests drive it with plain events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from ledger import identity
from ledger.growing import grown_map, grown_set
from ledger.errors import InvalidEvent, RuleViolation
from ledger.events import (
    GENESIS_HASH,
    ApprovalRejected,
    DataSnapshotted,
    DriftDetected,
    Event,
    FeedbackRecorded,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
    ModelTrained,
    PerformanceDegraded,
)

# Rule names: stable identifiers a caller can match on (and the CLI prints).
SNAPSHOT_UNIQUE = "snapshot-id-unique"
SNAPSHOT_EXISTS = "snapshot-exists"
VERSION_UNIQUE = "version-never-reused"
VERSION_EXISTS = "version-exists"
PARENT_EXISTS = "parent-version-exists"
EVALUATED_BEFORE_APPROVAL = "evaluation-before-approval"
FOUR_EYES = "four-eyes"
ALREADY_DECIDED = "decision-already-recorded"
APPROVED_BEFORE_DEPLOY = "deploy-only-approved"
ALREADY_DEPLOYED = "already-deployed"
DRIFT_ON_DEPLOYED = "drift-names-deployed-version"
RETIRED = "nothing-after-retirement"
MODEL_RETIRED = "model-retired"
MODEL_MISMATCH = "wrong-stream"
FEEDBACK_ON_DEPLOYED = "feedback-names-deployed-version"
FEEDBACK_CONSISTENT = "feedback-counts-consistent"
DEGRADATION_NAMES_FEEDBACK = "degradation-names-feedback"

RATE_METRICS = frozenset(
    {"precision", "recall", "f1", "accuracy", "false_alarm_rate", "miss_rate", "specificity", "roc_auc"}
)
"""Field metrics that are fractions: a value outside [0, 1] is a broken report."""

RETIRE_KNOWN_MODEL = "retire-known-model"
TRIGGER_ALERT = "trigger-alert-of-this-model"
EVALUATION_ADDS_UP = "evaluation-adds-up"
CONTRACT_BOUNDS = "contract-bounds-ordered"
OCCURRED_AT_RANGE = "occurred-at-in-range"
FINITE_NUMBERS = "finite-numbers"

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the ledger's future an event's ``occurred_at`` may be: the emitter's
clock may run a little ahead of the ledger's, no more."""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""No lifecycle action of a machine-learning model happened before Unix time 0."""


@dataclass(frozen=True)
class VersionState:
    version: int
    trained_by: str
    snapshot_ids: tuple[str, ...]
    evaluations: int = 0
    last_evaluation_passed: bool = False
    approved_by: str | None = None
    """The approval that covers the latest evaluation (None once a later evaluation
    is recorded: an approval stands for the evidence it saw)."""
    rejected_by: str | None = None
    retired: bool = False
    reopened_by: str | None = None
    """Who recorded an evaluation after the last decision (that decision is stale)."""
    stale_approval_by: str | None = None
    """The approval a later evaluation made stale (what a deploy relied on before
    issue 9: replaying such a history accepts it, see :func:`check`)."""
    trained_recorded_by: str | None = None
    """The principal that recorded the training on behalf of ``trained_by`` (the
    event's ``recorded_by``, schema v4), if another did."""

    @property
    def status(self) -> str:
        if self.retired:
            return "retired"
        if self.rejected_by:
            return "rejected"
        if self.approved_by:
            return "approved"
        if self.evaluations:
            return "evaluated"
        return "trained"


@dataclass(frozen=True)
class ModelState:
    model: str
    sequence: int = 0
    last_hash: str = GENESIS_HASH
    snapshots: AbstractSet[str] = frozenset()
    """Snapshot ids registered on the stream (a :class:`ledger.growing.GrowingSet` once grown)."""
    versions: dict[int, VersionState] = field(default_factory=dict)
    deployed: dict[str, int] = field(default_factory=dict)
    """Environment → version currently deployed there."""
    retired: bool = False
    last_recorded_at: datetime | None = None
    feedback: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    """``FeedbackRecorded`` event id → (version, environment) it is about."""
    alerts: AbstractSet[str] = frozenset()
    """Event ids of this model's drift and degradation alerts (what a retraining may
    name as its trigger)."""

    def version(self, number: int | None) -> VersionState:
        state = self.versions.get(number) if number is not None else None
        if state is None:
            raise RuleViolation(
                VERSION_EXISTS, f"model {self.model!r} has no version {number}"
            )
        return state


def _refuse(rule: str, reason: str):
    raise RuleViolation(rule, reason)


def evaluation_passes(metrics: dict[str, float], thresholds: dict[str, float]) -> bool:
    """Whether ``metrics`` meet ``thresholds``: each threshold is the *minimum*
    acceptable value of its metric (as ``ModelEvaluated``'s schema says), met when
    the metric is at least that; a metric without a threshold is recorded for
    information and decides nothing; no thresholds at all is passed. A lower-is-better
    metric (a loss, an error rate) is recorded negated to be held to a minimum."""
    return all(m in metrics and metrics[m] >= t for m, t in thresholds.items())


def _non_finite(value, path: str = "") -> str | None:
    """Dotted path of the first NaN or infinite number in ``value``, if any."""
    if not path and _all_finite(value):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items = ((f"{path}.{k}".lstrip("."), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for p, v in items if (found := _non_finite(v, p))), None)


def _all_finite(values: dict | list | tuple) -> bool:
    """Whether every float in ``values`` (a ``model_dump()``) is finite: the common
    case, answered in one loop per container, without building the path
    :func:`_non_finite` names."""
    for item in values.values() if type(values) is dict else values:
        kind = type(item)
        if kind is float:
            if item - item != 0.0:  # inf - inf and NaN - NaN are NaN
                return False
        elif (kind is dict or kind is list or kind is tuple) and not _all_finite(item):
            return False
    return True


def admit(draft: Event, now: datetime, *, values: dict | None = None, numbers_checked: bool = False) -> None:
    """Checks a *new* event must pass on its own, before the history rules: a clear
    identity, numbers that add up, bounds in order. ``values`` is
    ``draft.model_dump()`` when the caller has it already (it is not changed);
    ``numbers_checked``: the caller saw every float in it finite already.

    Stored events are not re-judged by these (they stay readable and verifiable as
    they were accepted): only the append path calls this."""
    identity.check_name(draft.actor)
    if draft.recorded_by is not None:
        identity.check_name(draft.recorded_by)
    if numbers_checked and values is None:
        raise ValueError("numbers_checked needs the values that were checked")
    if values is None:
        values = draft.model_dump()
    if not numbers_checked and not _all_finite(values):
        where = _non_finite(values)
        raise InvalidEvent(FINITE_NUMBERS, f"{where} is not a finite number (NaN and infinities are not JSON)")
    if draft.occurred_at > now + CLOCK_SKEW:
        raise InvalidEvent(
            OCCURRED_AT_RANGE,
            f"occurred_at {draft.occurred_at.isoformat()} is in the future (the ledger's clock says "
            f"{now.isoformat()}; at most {int(CLOCK_SKEW.total_seconds() // 60)} minutes of clock skew are allowed)",
        )
    if draft.occurred_at < EPOCH:
        raise InvalidEvent(OCCURRED_AT_RANGE, f"occurred_at {draft.occurred_at.isoformat()} is before 1970")
    if isinstance(draft, ModelEvaluated):
        missing = sorted(set(draft.thresholds) - set(draft.metrics))
        if missing:
            raise RuleViolation(EVALUATION_ADDS_UP, f"threshold(s) on {', '.join(missing)} but no such metric was recorded")
        computed = evaluation_passes(draft.metrics, draft.thresholds)
        if draft.passed != computed:
            below = sorted(
                m for m, t in draft.thresholds.items() if not (draft.metrics[m] >= t)  # NaN is below
            )
            why = (
                f"{', '.join(f'{m}={draft.metrics[m]} < {draft.thresholds[m]}' for m in below)} (thresholds are minimums)"
                if below
                else "every threshold is met (thresholds are minimums)"
            )
            raise RuleViolation(
                EVALUATION_ADDS_UP,
                f"{draft.model}@{draft.version} says passed={str(draft.passed).lower()} but {why}",
            )
    if isinstance(draft, DataSnapshotted):
        for column in draft.contract.columns:
            if column.minimum is not None and column.maximum is not None and not column.minimum <= column.maximum:
                raise InvalidEvent(
                    CONTRACT_BOUNDS,
                    f"column {column.name!r} has minimum {column.minimum} above its maximum {column.maximum}",
                )


def _four_eyes(version: VersionState, event: Event, label: str, verb: str, history: bool) -> None:
    """Refuse a decision made by anyone who had a hand in the training: the
    decision's actor and the principal that recorded it on the actor's behalf
    (``recorded_by``) must both differ from the trainer and from whoever recorded
    the training on the trainer's behalf. So a pipeline runner that trained (or
    recorded the training) cannot approve by naming someone else: an approval is
    evidence of a second pair of eyes only if a second principal recorded it."""
    same = (lambda a, b: a == b) if history else identity.same_person

    def alias(name: str, known: str) -> str:
        return "" if name == known else f" (the same person as {known!r})"

    if same(event.actor, version.trained_by):
        _refuse(FOUR_EYES, f"{event.actor!r}{alias(event.actor, version.trained_by)} trained {label} and cannot also {verb} it")
    trainer = version.trained_recorded_by
    if trainer is not None and same(event.actor, trainer):
        _refuse(
            FOUR_EYES,
            f"{event.actor!r}{alias(event.actor, trainer)} recorded the training of {label} "
            f"(as {version.trained_by!r}) and cannot also {verb} it",
        )
    recorder = event.recorded_by
    if recorder is None:
        return
    if same(recorder, version.trained_by):
        _refuse(
            FOUR_EYES,
            f"{recorder!r}{alias(recorder, version.trained_by)} trained {label} and cannot also {verb} it, "
            f"not even as {event.actor!r}",
        )
    if trainer is not None and same(recorder, trainer):
        _refuse(
            FOUR_EYES,
            f"{recorder!r}{alias(recorder, trainer)} recorded the training of {label} (as {version.trained_by!r}) "
            f"and cannot also record its {verb} (as {event.actor!r}): four eyes needs a second principal",
        )


def check(state: ModelState, event: Event, *, history: bool = False) -> Event:
    """Validate ``event`` against ``state``; return it as it will be recorded.

    ``history`` is for replaying stored events (``verify``, and the append path
    folding a stream): a rule tightened by issue 9 is held as it was when those
    events were accepted — the same name spelled differently was another person,
    a deploy could rely on an approval a later passing evaluation made stale, a
    whole model with no events could be retired, a parent needed only to exist, a
    trigger alert id was not checked. So a stream recorded before stays verifiable
    and open to new events, which are held to the rules as they are now."""
    if event.model != state.model:
        _refuse(MODEL_MISMATCH, f"event for {event.model!r} on stream {state.model!r}")
    if state.retired:
        _refuse(MODEL_RETIRED, f"model {state.model!r} is retired; nothing more can happen to it")

    label = f"{state.model}@{event.version}"
    if isinstance(event, DataSnapshotted):
        if event.snapshot_id in state.snapshots:
            _refuse(SNAPSHOT_UNIQUE, f"snapshot {event.snapshot_id!r} is already registered for {state.model!r}")
        return event

    if isinstance(event, ModelTrained):
        if event.version in state.versions:
            _refuse(VERSION_UNIQUE, f"version {event.version} of {state.model!r} already exists")
        missing = [s for s in event.snapshot_ids if s not in state.snapshots]
        if missing:
            _refuse(SNAPSHOT_EXISTS, f"{label} is trained on unknown snapshot(s) {', '.join(missing)}")
        if event.parent_version is not None and event.parent_version not in state.versions:
            _refuse(PARENT_EXISTS, f"parent version {event.parent_version} of {label} does not exist")
        if history:
            return event
        if event.parent_version is not None and event.parent_version >= event.version:
            _refuse(PARENT_EXISTS, f"parent version {event.parent_version} of {label} is not older than it")
        if event.trigger_alert_id is not None and event.trigger_alert_id not in state.alerts:
            _refuse(TRIGGER_ALERT, f"{label}'s trigger {event.trigger_alert_id!r} is not a drift or degradation alert of {state.model!r}")
        return event

    if isinstance(event, ModelRetired) and event.version is None:
        if state.sequence == 0 and not history:
            # Retiring is for good: on an unknown name it would burn the name forever.
            _refuse(RETIRE_KNOWN_MODEL, f"model {state.model!r} has no events; there is nothing to retire")
        return event

    version = state.version(event.version)
    if version.retired:
        _refuse(RETIRED, f"{label} is retired; nothing more can happen to it")

    if isinstance(event, ModelEvaluated):
        if event.evaluation_snapshot_id not in state.snapshots:
            _refuse(SNAPSHOT_EXISTS, f"{label} is evaluated on unknown snapshot {event.evaluation_snapshot_id!r}")
        return event

    if isinstance(event, ModelApproved | ApprovalRejected):
        verb = "approve" if isinstance(event, ModelApproved) else "reject"
        _four_eyes(version, event, label, verb, history)
        if isinstance(event, ModelApproved):
            if not version.evaluations:
                _refuse(EVALUATED_BEFORE_APPROVAL, f"{label} has not been evaluated")
            if not version.last_evaluation_passed:
                _refuse(EVALUATED_BEFORE_APPROVAL, f"{label}'s latest evaluation did not pass")
            if version.approved_by and not version.rejected_by:
                _refuse(ALREADY_DECIDED, f"{label} is already approved by {version.approved_by!r} since its latest evaluation")
        elif version.rejected_by:
            _refuse(ALREADY_DECIDED, f"{label} is already rejected by {version.rejected_by!r} since its latest evaluation")
        return event

    if isinstance(event, ModelDeployed):
        relied_on_stale = history and version.stale_approval_by is not None and version.last_evaluation_passed
        if version.status != "approved" and not relied_on_stale:
            if version.reopened_by is not None and version.status == "evaluated":
                # An approval stands for the evidence it saw: an evaluation recorded
                # after it must be decided on again before the version ships.
                _refuse(
                    APPROVED_BEFORE_DEPLOY,
                    f"{label} was evaluated again (by {version.reopened_by!r}) after its last decision; "
                    "it needs a new approval",
                )
            _refuse(APPROVED_BEFORE_DEPLOY, f"{label} is {version.status}, not approved")
        current = state.deployed.get(event.environment)
        if current == event.version:
            _refuse(ALREADY_DEPLOYED, f"{label} is already deployed to {event.environment}")
        return event.model_copy(update={"replaced_version": current})

    if isinstance(event, DriftDetected):
        if state.deployed.get(event.environment) != event.version:
            where = state.deployed.get(event.environment)
            now = f"version {where} is" if where else "nothing is"
            _refuse(DRIFT_ON_DEPLOYED, f"{label} is not deployed to {event.environment} ({now})")
        return event

    if isinstance(event, ModelRetired):
        return event

    if isinstance(event, FeedbackRecorded):
        if state.deployed.get(event.environment) != event.version:
            where = state.deployed.get(event.environment)
            now = f"version {where} is" if where else "nothing is"
            _refuse(FEEDBACK_ON_DEPLOYED, f"{label} is not deployed to {event.environment} ({now})")
        problems = feedback_problems(event)
        if problems:
            _refuse(FEEDBACK_CONSISTENT, f"feedback on {label}: " + "; ".join(problems))
        return event

    if isinstance(event, PerformanceDegraded):
        about = state.feedback.get(event.feedback_event_id)
        if about is None:
            _refuse(
                DEGRADATION_NAMES_FEEDBACK,
                f"degradation alert on {label} names feedback {event.feedback_event_id!r}, "
                f"which is not a FeedbackRecorded of {state.model!r}",
            )
        if about != (event.version, event.environment):
            _refuse(
                DEGRADATION_NAMES_FEEDBACK,
                f"degradation alert on {label} in {event.environment} names feedback about "
                f"{state.model}@{about[0]} in {about[1]}",
            )
        return event

    raise RuleViolation("unknown-event", f"no rule knows {type(event).__name__}")


def feedback_problems(event: FeedbackRecorded) -> list[str]:
    """What makes a feedback report impossible: negative counts, more confirmed
    alarms than alarms or more alarms than predictions, a window that ends before
    it starts, a rate outside [0, 1], a metric that is not a finite number."""
    problems = []
    counts = {"predictions": event.predictions, "alarms": event.alarms, "confirmed": event.confirmed, "unlabelled": event.unlabelled}
    negative = [name for name, count in counts.items() if count < 0]
    if negative:
        problems.append(f"negative count(s): {', '.join(f'{n}={counts[n]}' for n in negative)}")
    if event.confirmed > event.alarms:
        problems.append(f"{event.confirmed} confirmed alarms out of {event.alarms} alarms")
    if event.alarms > event.predictions:
        problems.append(f"{event.alarms} alarms out of {event.predictions} predictions")
    if event.window_end < event.window_start:
        problems.append(f"the window ends ({event.window_end.isoformat()}) before it starts ({event.window_start.isoformat()})")
    for name, value in sorted(event.metrics.items()):
        if not math.isfinite(value):
            problems.append(f"metric {name} is {value}, not a finite number")
        elif name in RATE_METRICS and not 0.0 <= value <= 1.0:
            problems.append(f"metric {name} is {value:g}, outside [0, 1]")
    return problems


def apply(state: ModelState, event: Event, event_hash: str) -> ModelState:
    """The state after ``event`` (already accepted, with its sequence). The
    growing collections (snapshots, alerts, feedback) are grown in O(1), sharing
    storage with ``state``'s, which stays as it was (:mod:`ledger.growing`): an
    event costs the same on a stream of years as on a new one."""
    versions = state.versions
    deployed = state.deployed
    snapshots = state.snapshots
    retired = state.retired
    feedback = state.feedback
    alerts = state.alerts

    def update(number: int, **changes) -> dict[int, VersionState]:
        return {**versions, number: replace(versions[number], **changes)}

    if isinstance(event, DataSnapshotted):
        snapshots = grown_set(snapshots, event.snapshot_id)
    elif isinstance(event, ModelTrained):
        versions = {
            **versions,
            event.version: VersionState(
                event.version, event.actor, event.snapshot_ids, trained_recorded_by=event.recorded_by
            ),
        }
    elif isinstance(event, ModelEvaluated):
        v = versions[event.version]
        decided = v.approved_by is not None or v.rejected_by is not None
        versions = update(
            event.version,
            evaluations=v.evaluations + 1,
            last_evaluation_passed=event.passed,
            approved_by=None,
            rejected_by=None,
            reopened_by=event.actor if decided else v.reopened_by,
            stale_approval_by=(v.approved_by if v.status == "approved" else None) if decided else v.stale_approval_by,
        )
    elif isinstance(event, ModelApproved):
        versions = update(event.version, approved_by=event.actor, rejected_by=None, reopened_by=None, stale_approval_by=None)
    elif isinstance(event, ApprovalRejected):
        versions = update(event.version, rejected_by=event.actor, reopened_by=None, stale_approval_by=None)
    elif isinstance(event, ModelDeployed):
        deployed = {**deployed, event.environment: event.version}
    elif isinstance(event, DriftDetected | PerformanceDegraded):
        alerts = grown_set(alerts, str(event.event_id))
    elif isinstance(event, ModelRetired):
        if event.version is None:
            retired = True
            deployed = {}
        else:
            versions = update(event.version, retired=True)
            deployed = {env: v for env, v in deployed.items() if v != event.version}
    elif isinstance(event, FeedbackRecorded):
        feedback = grown_map(feedback, str(event.event_id), (event.version, event.environment))
    return ModelState(
        model=state.model,
        sequence=event.sequence or state.sequence + 1,
        last_hash=event_hash,
        snapshots=snapshots,
        versions=versions,
        deployed=deployed,
        retired=retired,
        last_recorded_at=event.recorded_at or state.last_recorded_at,
        feedback=feedback,
        alerts=alerts,
    )
