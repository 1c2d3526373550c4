"""Recording field feedback through the ledger's append path: what
``ledger feedback record`` calls.

The decisions are pure (:mod:`ledger.data.feedback`); this module reads the files
and the model's stream, stores the data and appends. One atomic append holds the
feedback data's snapshot (when new), ``FeedbackRecorded`` and, when a metric
crossed its threshold, ``PerformanceDegraded``: either all are recorded or none
(e.g. when the version is not deployed in that environment).

Safe to repeat: the feedback's event id is derived from what it is about (model,
version, environment, snapshot of the data), the alert's from the feedback's, so
recording the same data twice records one feedback and one alert — and the
retraining consumer retrains once.
"""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from ledger import rules
from ledger.data import datasets
from ledger.data.feedback import FeedbackContract, FieldMeasure, FieldPolicy, Verdict, checks, join, judge, measure
from ledger.data.monitoring import _prepare_snapshot
from ledger.errors import InputError, RuleViolation
from ledger.events import DataSnapshotted, Event, FeedbackRecorded, ModelEvaluated, PerformanceDegraded
from ledger.jsonio import load_object

_FEEDBACK_NAMESPACE = uuid.UUID("6a1c2f4e-8d3b-4e7a-b5c9-666565646261")
DEFAULT_DATASET = "field-feedback"


def feedback_id(model: str, version: int, environment: str, snapshot_id: str) -> uuid.UUID:
    return uuid.uuid5(_FEEDBACK_NAMESPACE, "\x00".join([model, str(version), environment, snapshot_id]))


def alert_id(feedback_event_id: str | uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(uuid.UUID(str(feedback_event_id)), "degraded")


def read_contract(path: str | Path | None) -> FeedbackContract:
    if path is None:
        return FeedbackContract()
    try:
        # As strict as an event's JSON: no duplicate keys, NaN or 1e999.
        return FeedbackContract.model_validate(load_object(Path(path).read_bytes(), "the feedback contract"))
    except OSError as exc:
        raise InputError(f"cannot read the feedback contract {str(path)!r}: {exc}") from exc
    except InputError as exc:
        raise InputError(f"invalid feedback contract {str(path)!r}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'contract'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"invalid feedback contract {str(path)!r}: {problems}") from exc


def read_policy(path: str | Path | None) -> FieldPolicy:
    """The ``[feedback]`` table of a TOML file (``minimums``, ``maximums``)."""
    if path is None:
        return FieldPolicy()
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("feedback", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read the field policy {str(path)!r}: {exc}") from exc
    if not isinstance(table, dict):
        raise InputError(f"{path}: [feedback] must be a table")
    return FieldPolicy.from_table(table, str(path))


def read_feedback(
    contract: FeedbackContract,
    *,
    data: str | Path | None = None,
    predictions: str | Path | None = None,
    outcomes: str | Path | None = None,
) -> datasets.Dataset:
    """One file holding both, or a predictions file and an outcomes file joined on
    the contract's key; checked against the contract."""
    if data is not None and (predictions is not None or outcomes is not None):
        raise InputError("give either --data FILE or --predictions FILE --outcomes FILE, not both")
    if data is not None:
        raw = datasets.read_csv(data)
    elif predictions is not None and outcomes is not None:
        raw = join(datasets.read_csv(predictions), datasets.read_csv(outcomes), contract)
    else:
        raise InputError("feedback needs --data FILE, or both --predictions FILE and --outcomes FILE")
    return datasets.validate(raw, contract.data_contract())


@dataclass(frozen=True)
class FeedbackResult:
    measure: FieldMeasure
    verdict: Verdict
    snapshot: DataSnapshotted
    snapshot_created: bool
    feedback: FeedbackRecorded
    feedback_created: bool
    alert: PerformanceDegraded | None
    alert_created: bool
    evaluation: ModelEvaluated | None


def latest_evaluation(stream: list[Event], version: int) -> ModelEvaluated | None:
    found = None
    for event in stream:
        if isinstance(event, ModelEvaluated) and event.version == version:
            found = event
    return found


def record_feedback(
    ledger,
    model: str,
    version: int,
    *,
    environment: str,
    actor: str,
    contract: FeedbackContract | None = None,
    policy: FieldPolicy | None = None,
    data: str | Path | None = None,
    predictions: str | Path | None = None,
    outcomes: str | Path | None = None,
    dataset: str = DEFAULT_DATASET,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    store: datasets.DataStore | None = None,
) -> FeedbackResult:
    """Measure a deployed version's field outcomes and record them; record
    ``PerformanceDegraded`` for the worst metric past its threshold, if any."""
    contract = contract or FeedbackContract()
    # Asked first, as the rule will: otherwise bad data for an undeployed version
    # would be reported as a data problem instead of the real one.
    serving = ledger.state(model).deployed.get(environment)
    if serving != version:
        now = f"version {serving} is" if serving else "nothing is"
        raise RuleViolation(rules.FEEDBACK_ON_DEPLOYED, f"{model}@{version} is not deployed to {environment} ({now})")
    table = read_feedback(contract, data=data, predictions=predictions, outcomes=outcomes)
    measured = measure(table, contract)
    start = window_start or measured.window_start
    end = window_end or measured.window_end
    if start is None or end is None:
        raise InputError(
            "the window of the predictions is unknown: name a timestamp column in the feedback contract "
            "or give --window-start and --window-end"
        )
    store = store or datasets.DataStore()
    for attempt in range(2):
        stream = list(ledger.events(model))
        evaluation = latest_evaluation(stream, version)
        verdict = judge(measured.metrics, checks(evaluation, policy))
        try:
            return _record(
                ledger, stream, table, measured, verdict, evaluation, model, version, environment, actor,
                dataset, start, end, store,
            )
        except RuleViolation as exc:
            if attempt or exc.rule not in (rules.SNAPSHOT_UNIQUE, "event-id-unique"):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _record(ledger, stream, table, measured, verdict, evaluation, model, version, environment, actor, dataset, start, end, store):
    snapshot, new_snapshot = _prepare_snapshot(
        stream, table, model=model, dataset=dataset, actor=actor, snapshot_id=None, store=store
    )
    fid = feedback_id(model, version, environment, snapshot.snapshot_id)
    by_id = {e.event_id: e for e in stream}
    feedback = by_id.get(fid)
    drafts: list[Event] = [snapshot] if new_snapshot else []
    if feedback is None:
        feedback = FeedbackRecorded(
            event_id=fid,
            model=model,
            version=version,
            actor=actor,
            environment=environment,
            window_start=start,
            window_end=end,
            predictions=measured.predictions,
            alarms=measured.alarms,
            confirmed=measured.confirmed,
            unlabelled=measured.unlabelled,
            metrics=measured.metrics,
            snapshot_id=snapshot.snapshot_id,
        )
        drafts.append(feedback)
    alert = by_id.get(alert_id(fid))
    if alert is None and verdict.worst is not None:
        check, value = verdict.worst
        drafts.append(
            PerformanceDegraded(
                event_id=alert_id(fid),
                model=model,
                version=version,
                actor=actor,
                environment=environment,
                metric=check.metric,
                value=value,
                threshold=check.threshold,
                bound=check.bound,
                threshold_source=check.source,
                feedback_event_id=str(fid),
                snapshot_id=snapshot.snapshot_id,
                causation_id=str(fid),
            )
        )
    created: dict[str, Event] = {}
    if drafts:
        for accepted in ledger.emit_many(drafts):
            if not accepted.duplicate:
                created[accepted.event.event_type] = accepted.event
    snapshot = created.get(DataSnapshotted.event_type, snapshot)
    feedback = created.get(FeedbackRecorded.event_type, feedback)
    alert = created.get(PerformanceDegraded.event_type, alert)
    return FeedbackResult(
        measure=measured,
        verdict=verdict,
        snapshot=snapshot,
        snapshot_created=DataSnapshotted.event_type in created,
        feedback=feedback,
        feedback_created=FeedbackRecorded.event_type in created,
        alert=alert,
        alert_created=PerformanceDegraded.event_type in created,
        evaluation=evaluation,
    )
