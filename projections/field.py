"""The field-performance view (part of the registry): each version's feedback
from the field and the degradation alerts raised on it.

A separate fold from :mod:`projections.registry` so the registry's batched
apply stays as it is; its tables are ``field_feedback`` and ``field_alerts``.
Rows are inserted, never updated: "the latest field performance" is the newest
row of a version in an environment at the cut, so as-of works like elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from ledger.events import FeedbackRecorded, PerformanceDegraded
from projections import bulk
from projections.asof import iso
from projections.base import Item, Projection, as_json
from projections.tables import field_alerts, field_feedback


class FieldPerformance(Projection):
    name = "field"
    follows = frozenset({FeedbackRecorded.event_type, PerformanceDegraded.event_type})

    def apply(self, conn: Connection, items: Sequence[Item]) -> None:
        feedback, alerts = [], []
        for item in items:
            e = item.event
            if item.stale or not isinstance(e, FeedbackRecorded | PerformanceDegraded):
                continue
            where = {
                "model": e.model,
                "version": e.version,
                "environment": e.environment,
                "partition": item.partition,
                "offset": item.offset,
                "event_id": item.event_id,
                "recorded_at": item.at,
                "reported_by": e.actor,
            }
            if isinstance(e, FeedbackRecorded):
                feedback.append(
                    {
                        **where,
                        "window_start": iso(e.window_start),
                        "window_end": iso(e.window_end),
                        "predictions": e.predictions,
                        "alarms": e.alarms,
                        "confirmed": e.confirmed,
                        "unlabelled": e.unlabelled,
                        "metrics": as_json(dict(e.metrics)),
                        "snapshot_id": e.snapshot_id,
                    }
                )
            elif isinstance(e, PerformanceDegraded):
                alerts.append(
                    {
                        **where,
                        "metric": e.metric,
                        "value": e.value,
                        "threshold": e.threshold,
                        "bound": e.bound,
                        "threshold_source": e.threshold_source,
                        "feedback_event_id": e.feedback_event_id,
                    }
                )
        # A forged copy of a record has the same position key only if it is the
        # same record: insert-unless-present keeps a re-applied batch harmless.
        bulk.insert_ignore(conn, field_feedback, feedback)
        bulk.insert_ignore(conn, field_alerts, alerts)
