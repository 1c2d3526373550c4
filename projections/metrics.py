"""Lifecycle lead-time metrics: how long an idea takes to reach production, how
long approvals wait, how long a drifting model stays in production before it is
replaced, and how often each environment is deployed to.

Two halves. :func:`load_facts` reads the few rows the metrics need from the views
(the audit trail, the registry's deployments, the lineage graph's drift alerts) —
the only I/O here. Everything else is a pure function of those rows, tested on
hand-built rows with known answers (``tests/unit/test_metrics.py``) and on a real
ledger (``tests/integration/test_metrics_cli.py``).

All times are the ledger's ``recorded_at`` (when the ledger learnt of the event),
the same clock the ``--as-of`` cuts use.

Which measurement falls inside ``since``/``until``: a lead time by the instant it
*ends* (the deployment, the approval) — "what reached production last quarter, and
how long did it take" — and an alert still open by the instant it was raised.

Percentiles: the median is the usual one (the mean of the two middle values for
an even count); the 90th percentile is the nearest-rank one (the smallest value
with at least 90 % of the values at or below it), so it is always a value that was
really measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from projections.asof import AsOf

PRODUCTION = "production"

METRICS = (
    "snapshot_to_production",
    "training_to_production",
    "approval_wait",
    "drift_to_replacement",
    "deploy_interval",
)
"""The metric names, in the order they are shown."""

DESCRIPTIONS = {
    "snapshot_to_production": "first data snapshot of a model → its first production deployment",
    "training_to_production": "a version trained → that version first deployed to production",
    "approval_wait": "a version's last evaluation before its approval → the approval",
    "drift_to_replacement": "a drift alert → another version deployed in the alert's environment",
    "deploy_interval": "time between successive deployments to one environment",
}


# --- rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One readable record of the audit trail."""

    event_type: str
    model: str
    version: int | None
    at: str
    partition: int
    offset: int
    event_id: str | None = None


@dataclass(frozen=True)
class Deployment:
    model: str
    version: int
    environment: str
    at: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Alert:
    event_id: str
    model: str
    version: int
    environment: str
    at: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Facts:
    events: tuple[Event, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    alerts: tuple[Alert, ...] = ()


def load_facts(database: Engine | Connection) -> Facts:
    """Every row the metrics use, from the views (all of them: cuts and filters are
    applied by the pure functions)."""
    from projections.queries import _connection
    from projections.tables import audit_events, lin_nodes, reg_deployments

    a, d, n = audit_events.c, reg_deployments.c, lin_nodes.c
    with _connection(database) as conn:
        events = tuple(
            Event(r.event_type, r.model, r.version, r.recorded_at, r.partition, r.offset, r.event_id)
            for r in conn.execute(
                select(a.event_type, a.model, a.version, a.recorded_at, a.partition, a.offset, a.event_id)
                .where(a.event_id.is_not(None), a.recorded_at.is_not(None))
                .order_by(a.partition, a.offset)
            )
        )
        deployments = tuple(
            Deployment(r.model, r.version, r.environment, r.deployed_at, r.partition, r.offset)
            for r in conn.execute(
                select(d.model, d.version, d.environment, d.deployed_at, d.partition, d.offset).order_by(d.partition, d.offset)
            )
        )
        alerts = tuple(
            Alert(r.node_id.rpartition("/")[2], r.model, r.version, r.environment, r.recorded_at, r.partition, r.offset)
            for r in conn.execute(
                select(n.node_id, n.model, n.version, n.environment, n.recorded_at, n.partition, n.offset)
                .where(n.kind == "drift_alert")
                .order_by(n.partition, n.offset)
            )
        )
    return Facts(events, deployments, alerts)


# --- pure helpers ------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """A time as the views store it (``2026-03-03T10:00:00.000000Z``)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def seconds_between(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: Sequence[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def cut(facts: Facts, *, as_of: AsOf | None = None, models: Iterable[str] | None = None) -> Facts:
    """The facts inside the cut, for the chosen models only."""
    wanted = set(models) if models else None

    def keep(row) -> bool:
        if wanted is not None and row.model not in wanted:
            return False
        return as_of is None or as_of.includes(row.partition, row.offset, row.at)

    return Facts(
        tuple(e for e in facts.events if keep(e)),
        tuple(d for d in facts.deployments if keep(d)),
        tuple(a for a in facts.alerts if keep(a)),
    )


def _log_order(rows):
    # recorded_at never steps back inside a model stream, and a stream lives in one
    # partition; across models the time orders them.
    return sorted(rows, key=lambda r: (r.at, r.partition, r.offset))


# --- the measurements ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    metric: str
    model: str
    version: int | None
    environment: str | None
    start: str
    end: str | None
    """None for something still waiting (an open drift alert)."""
    seconds: float | None
    subject: str = ""
    """What was measured, for people (``churn@2``, ``alert 5f3c…``)."""

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "model": self.model,
            "version": self.version,
            "environment": self.environment,
            "subject": self.subject,
            "start": self.start,
            "end": self.end,
            "seconds": self.seconds,
        }


def snapshot_to_production(facts: Facts, production: str = PRODUCTION) -> list[Measurement]:
    """Per model: its first snapshot → its first deployment to ``production``."""
    first_snapshot: dict[str, Event] = {}
    for e in _log_order(facts.events):
        if e.event_type == "DataSnapshotted":
            first_snapshot.setdefault(e.model, e)
    first_deploy: dict[str, Deployment] = {}
    for d in _log_order(facts.deployments):
        if d.environment == production:
            first_deploy.setdefault(d.model, d)
    found = []
    for model, deploy in sorted(first_deploy.items()):
        snap = first_snapshot.get(model)
        if snap is None or snap.at > deploy.at:
            continue
        found.append(
            Measurement("snapshot_to_production", model, deploy.version, production, snap.at, deploy.at,
                        seconds_between(snap.at, deploy.at), f"{model}@{deploy.version}")
        )
    return found


def training_to_production(facts: Facts, production: str = PRODUCTION) -> list[Measurement]:
    """Per version deployed to ``production``: trained → first deployed there."""
    trained = {(e.model, e.version): e for e in _log_order(facts.events) if e.event_type == "ModelTrained"}
    first_deploy: dict[tuple[str, int], Deployment] = {}
    for d in _log_order(facts.deployments):
        if d.environment == production:
            first_deploy.setdefault((d.model, d.version), d)
    found = []
    for (model, version), deploy in sorted(first_deploy.items()):
        t = trained.get((model, version))
        if t is None:
            continue
        found.append(
            Measurement("training_to_production", model, version, production, t.at, deploy.at,
                        seconds_between(t.at, deploy.at), f"{model}@{version}")
        )
    return found


def approval_wait(facts: Facts) -> list[Measurement]:
    """Per approved version: its last evaluation before the (first) approval → the
    approval. A version approved without an evaluation is not measured."""
    found = []
    last_evaluation: dict[tuple[str, int], Event] = {}
    approved: set[tuple[str, int]] = set()
    for e in _log_order(facts.events):
        key = (e.model, e.version)
        if e.event_type == "ModelEvaluated":
            last_evaluation[key] = e
        elif e.event_type == "ModelApproved" and key not in approved:
            approved.add(key)
            ev = last_evaluation.get(key)
            if ev is not None:
                found.append(
                    Measurement("approval_wait", e.model, e.version, None, ev.at, e.at,
                                seconds_between(ev.at, e.at), f"{e.model}@{e.version}")
                )
    return sorted(found, key=lambda m: (m.model, m.version))


def drift_to_replacement(facts: Facts) -> list[Measurement]:
    """Per drift alert: raised → the first deployment, in the alert's environment,
    of another version of its model (a retrained one or a rollback). An alert with
    no such deployment yet is open (``end`` None) — unless the alerted version left
    that environment without a replacement (a retirement), which closes nothing and
    is not counted."""
    deployments = _log_order(facts.deployments)
    retired = [e for e in _log_order(facts.events) if e.event_type == "ModelRetired"]
    found = []
    for alert in _log_order(facts.alerts):
        replacement = next(
            (
                d for d in deployments
                if d.model == alert.model and d.environment == alert.environment
                and d.version != alert.version and (d.at, d.partition, d.offset) > (alert.at, alert.partition, alert.offset)
            ),
            None,
        )
        subject = f"{alert.model}@{alert.version} in {alert.environment}"
        if replacement is not None:
            found.append(
                Measurement("drift_to_replacement", alert.model, alert.version, alert.environment, alert.at,
                            replacement.at, seconds_between(alert.at, replacement.at), subject)
            )
            continue
        withdrawn = any(
            r.model == alert.model and r.version in (None, alert.version) and r.at >= alert.at for r in retired
        )
        if not withdrawn:
            found.append(
                Measurement("drift_to_replacement", alert.model, alert.version, alert.environment, alert.at,
                            None, None, subject)
            )
    return found


def deploy_intervals(facts: Facts) -> list[Measurement]:
    """Per environment, the time between each deployment and the one before it
    (any model): how often that environment changes."""
    previous: dict[str, Deployment] = {}
    found = []
    for d in _log_order(facts.deployments):
        before = previous.get(d.environment)
        if before is not None:
            found.append(
                Measurement("deploy_interval", d.model, d.version, d.environment, before.at, d.at,
                            seconds_between(before.at, d.at), f"{d.model}@{d.version}")
            )
        previous[d.environment] = d
    return found


# --- the answer ------------------------------------------------------------------------------


@dataclass
class Answer:
    summary: list[dict] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)

    def as_dict(self, *, as_of: AsOf | None, since: str | None, until: str | None) -> dict:
        return {
            "as_of": as_of.describe() if as_of else None,
            "since": since,
            "until": until,
            "summary": self.summary,
            "measurements": [m.as_dict() for m in self.measurements],
        }


SUMMARY_COLUMNS = ("metric", "environment", "count", "open", "median_seconds", "p90_seconds", "deployments", "per_week")


def _in_window(moment: str | None, since: str | None, until: str | None) -> bool:
    if moment is None:
        return False
    return (since is None or moment >= since) and (until is None or moment <= until)


def compute(
    facts: Facts,
    *,
    as_of: AsOf | None = None,
    models: Iterable[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    production: str = PRODUCTION,
) -> Answer:
    """Every metric over ``facts`` cut at ``as_of``, for ``models`` (all when None),
    for what ended (or, for open alerts, began) between ``since`` and ``until``
    (stored-format times, inclusive)."""
    facts = cut(facts, as_of=as_of, models=models)
    answer = Answer()
    measured = {
        "snapshot_to_production": snapshot_to_production(facts, production),
        "training_to_production": training_to_production(facts, production),
        "approval_wait": approval_wait(facts),
        "drift_to_replacement": drift_to_replacement(facts),
    }
    for name, rows in measured.items():
        rows = [m for m in rows if _in_window(m.end, since, until) or (m.end is None and _in_window(m.start, since, until))]
        answer.measurements.extend(rows)
        done = [m.seconds for m in rows if m.seconds is not None]
        answer.summary.append(
            {
                "metric": name,
                "environment": production if name.endswith("_production") else None,
                "count": len(done),
                "open": sum(1 for m in rows if m.end is None) if name == "drift_to_replacement" else None,
                "median_seconds": median(done),
                "p90_seconds": p90(done),
                "deployments": None,
                "per_week": None,
            }
        )
    intervals = deploy_intervals(facts)
    environments = sorted({d.environment for d in facts.deployments})
    for environment in environments:
        deployed = [d for d in facts.deployments if d.environment == environment and _in_window(d.at, since, until)]
        gaps = [m for m in intervals if m.environment == environment and _in_window(m.end, since, until)]
        answer.measurements.extend(gaps)
        seconds = [m.seconds for m in gaps]
        answer.summary.append(
            {
                "metric": "deploy_interval",
                "environment": environment,
                "count": len(seconds),
                "open": None,
                "median_seconds": median(seconds),
                "p90_seconds": p90(seconds),
                "deployments": len(deployed),
                "per_week": _per_week(deployed, since, until, as_of),
            }
        )
    return answer


def _per_week(deployed: Sequence[Deployment], since: str | None, until: str | None, as_of: AsOf | None) -> float | None:
    """Deployments per week over the window: ``since``/``until`` where given, else
    the first and last deployment counted (so a window with one deployment, or all
    at one instant, has no rate)."""
    if not deployed:
        return None
    times = sorted(d.at for d in deployed)
    start = since or times[0]
    end = until or (as_of.time if as_of is not None and as_of.is_time else None) or times[-1]
    span = seconds_between(start, end)
    if span <= 0:
        return None
    return round(len(deployed) / (span / (7 * 86400)), 3)


def human(seconds: float | None) -> str:
    """``90061`` → ``1d 1h``; ``3725`` → ``1h 2m``; ``42.5`` → ``42.5s``."""
    if seconds is None:
        return ""
    negative = seconds < 0
    s = abs(seconds)
    if s < 60:
        text = f"{s:.3g}s"
    elif s < 3600:
        text = f"{int(s // 60)}m {int(s % 60)}s"
    elif s < 86400:
        text = f"{int(s // 3600)}h {int(s % 3600 // 60)}m"
    else:
        text = f"{int(s // 86400)}d {int(s % 86400 // 3600)}h"
    return f"-{text}" if negative else text
