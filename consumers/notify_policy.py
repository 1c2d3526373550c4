"""What the notification consumer says, and to whom: pure functions of an event.

No I/O, no clock: the same event always gives the same message and the same
deliveries, which is what lets a replayed event be recognised and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from consumers.runner import Intent
from ledger.events import (
    ApprovalRejected,
    DriftDetected,
    Event,
    ModelApproved,
    ModelDeployed,
    ModelRetired,
    PerformanceDegraded,
)

DEFAULT_EVENTS: tuple[str, ...] = (
    ModelApproved.event_type,
    ApprovalRejected.event_type,
    ModelDeployed.event_type,
    DriftDetected.event_type,
    PerformanceDegraded.event_type,
    ModelRetired.event_type,
)
"""The events people act on: approve, reject, deploy, drift, degradation, retire."""


@dataclass(frozen=True, slots=True)
class Route:
    """A configured channel as the policy sees it: its name and the event types it
    wants (None: the consumer-wide list)."""

    channel: str
    events: frozenset[str] | None = None


def _model_version(event: Event) -> str:
    return f"{event.model} v{event.version}" if event.version is not None else event.model


def _number(value: float) -> str:
    return f"{value:.4g}"


def headline(event: Event) -> str:
    """One line a person understands at a glance (the e-mail subject)."""
    subject = _model_version(event)
    if isinstance(event, ModelApproved):
        return f"{subject} approved by {event.actor}"
    if isinstance(event, ApprovalRejected):
        return f"{subject} rejected by {event.actor}"
    if isinstance(event, ModelDeployed):
        return f"{subject} deployed to {event.environment} by {event.actor}"
    if isinstance(event, DriftDetected):
        where = f" on {event.feature}" if event.feature else ""
        return (
            f"{subject} drifted in {event.environment}{where}: {event.metric} "
            f"{_number(event.value)} (threshold {_number(event.threshold)})"
        )
    if isinstance(event, PerformanceDegraded):
        sign = "<" if event.bound == "minimum" else ">"
        return (
            f"{subject} degraded in {event.environment}: {event.metric} "
            f"{_number(event.value)} {sign} threshold {_number(event.threshold)}"
        )
    if isinstance(event, ModelRetired):
        scope = "" if event.version is not None else " (every version)"
        return f"{subject} retired{scope} by {event.actor}"
    return f"{event.event_type} on {subject} by {event.actor}"


def summary(event: Event) -> str:
    """The headline plus the detail that explains it (reason, replaced version…)."""
    parts = [headline(event)]
    if isinstance(event, ModelDeployed) and event.replaced_version is not None:
        parts.append(f"replacing v{event.replaced_version}")
    if isinstance(event, DriftDetected):
        parts.append(f"reported by {event.actor}, reference snapshot {event.reference_snapshot_id}")
    if isinstance(event, PerformanceDegraded):
        parts.append(
            f"reported by {event.actor}, threshold from the {event.threshold_source.replace('-', ' ')}, "
            f"feedback {event.feedback_event_id}"
        )
    reason = getattr(event, "reason", "")
    if reason:
        parts.append(f"reason: {reason}")
    return "; ".join(parts)


def message(event: Event) -> dict:
    """The notification every channel carries (the webhook's JSON body)."""
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "model": event.model,
        "version": event.version,
        "actor": event.actor,
        "occurred_at": event.occurred_at.isoformat(),
        "summary": summary(event),
        "event": event.model_dump(mode="json"),
    }


def subject(event: Event) -> str:
    """E-mail subject: ``[ledger] churn v3 deployed to production by deployer``."""
    return f"[ledger] {headline(event)}"


def delivery_payload(event: Event) -> dict:
    """What is stored with each delivery: the message and the e-mail subject."""
    return {"subject": subject(event), "message": message(event)}


def policy(event: Event, events: Iterable[str], routes: Iterable[Route]) -> list[Intent]:
    """One delivery per channel that wants this event type."""
    wanted = set(events)
    intents = []
    for route in routes:
        accepts = route.events if route.events is not None else wanted
        if event.event_type in accepts:
            intents.append(Intent(route.channel, delivery_payload(event)))
    return intents
