"""The audit view: one row per log record — who did what, when, to which model,
the event's hash and whether it links to the previous event of its model.

Unreadable records get a row too (type ``unreadable``, chain ``unverifiable``, the
reason as summary), so the trail has no hole where the log has a bad record.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from ledger.events import (
    BY_TYPE,
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
from projections import bulk
from projections.asof import iso
from projections.base import Item, Projection, canonical_actor
from projections.tables import audit_events

UNREADABLE = "unreadable"


def _number(value: float) -> str:
    return format(value, "g")


def summarize(event: Event) -> str:
    """One line saying what the event changed. Pure: the same event always gives
    the same text."""
    v = f"v{event.version}"
    if isinstance(event, DataSnapshotted):
        return (
            f"snapshot {event.snapshot_id} of {event.dataset}: {event.row_count} rows, "
            f"{len(event.contract.columns)} columns, content {event.content_hash}"
        )
    if isinstance(event, ModelTrained):
        text = f"trained {v} on {', '.join(event.snapshot_ids)} with code {event.code_ref}"
        if event.parent_version is not None:
            text += f", retrained from v{event.parent_version}"
        if event.trigger != "manual":
            text += f" (trigger: {event.trigger}"
            text += f" {event.trigger_alert_id})" if event.trigger_alert_id else ")"
        return text
    if isinstance(event, ModelEvaluated):
        metrics = ", ".join(f"{k}={_number(event.metrics[k])}" for k in sorted(event.metrics))
        verdict = "passed" if event.passed else "failed"
        return f"evaluated {v} on {event.evaluation_snapshot_id}: {verdict}" + (f" ({metrics})" if metrics else "")
    if isinstance(event, ModelApproved | ApprovalRejected):
        verb = "approved" if isinstance(event, ModelApproved) else "rejected"
        return f"{verb} {v}" + (f": {event.reason}" if event.reason else "")
    if isinstance(event, ModelDeployed):
        text = f"deployed {v} to {event.environment}"
        if event.replaced_version is not None:
            text += f", replacing v{event.replaced_version}"
        if event.traffic_percent != 100:
            text += f" ({event.traffic_percent}% of traffic)"
        return text
    if isinstance(event, DriftDetected):
        what = f"{event.metric} of {event.feature}" if event.feature else event.metric
        side = "at or above" if event.crossed else "below"
        return (
            f"drift on {v} in {event.environment}: {what} {_number(event.value)} "
            f"{side} threshold {_number(event.threshold)} (reference {event.reference_snapshot_id})"
        )
    if isinstance(event, FeedbackRecorded):
        metrics = ", ".join(f"{k}={_number(event.metrics[k])}" for k in sorted(event.metrics))
        return (
            f"field feedback on {v} in {event.environment}: {event.predictions} labelled predictions, "
            f"{event.alarms} alarms, {event.confirmed} confirmed" + (f" ({metrics})" if metrics else "")
            + f", data {event.snapshot_id}"
        )
    if isinstance(event, PerformanceDegraded):
        side = "below" if event.bound == "minimum" else "above"
        return (
            f"degradation of {v} in {event.environment}: {event.metric} {_number(event.value)} {side} "
            f"threshold {_number(event.threshold)} ({event.threshold_source}; feedback {event.feedback_event_id})"
        )
    if isinstance(event, ModelRetired):
        target = v if event.version is not None else "the model"
        return f"retired {target}" + (f": {event.reason}" if event.reason else "")
    return event.event_type  # pragma: no cover - every event type is handled above


class Audit(Projection):
    name = "audit"
    follows = frozenset(BY_TYPE)
    applies_stale = True
    wants_unreadable = True

    def apply(self, conn: Connection, items: Sequence[Item]) -> None:
        # Audit rows depend on nothing already in the table: one multi-row insert.
        rows = [self._row(item) for item in items]
        if rows:
            bulk.insert(conn, audit_events, rows)

    @staticmethod
    def _row(item: Item) -> dict:
        record = item.record
        event = item.event
        if event is None:
            return {
                "partition": item.partition,
                "offset": item.offset,
                "recorded_at": item.at,
                "occurred_at": None,
                "actor": None,
            "actor_canonical": None,
                "recorded_by": None,
                "recorded_by_canonical": None,
                "event_type": UNREADABLE,
                "model": record.model or None,
                "version": None,
                "sequence": record.sequence,
                "event_id": None,
                "summary": f"unreadable record quarantined: {item.problem}",
                "hash": item.hash,
                "prev_hash": None,
                "chain": "unverifiable",
            }
        return {
            "partition": item.partition,
            "offset": item.offset,
            "recorded_at": item.at,
            "occurred_at": iso(event.occurred_at),
            "actor": event.actor,
            "actor_canonical": canonical_actor(event.actor),
            "recorded_by": event.recorded_by,
            "recorded_by_canonical": canonical_actor(event.recorded_by) if event.recorded_by is not None else None,
            "event_type": event.event_type,
            "model": event.model,
            "version": event.version,
            "sequence": event.sequence,
            "event_id": item.event_id,
            "summary": summarize(event),
            "hash": item.hash,
            "prev_hash": event.prev_hash,
            "chain": item.chain,
        }
