"""A synthetic ledger: many models living full lifecycles — snapshots, training,
evaluations (some failing, then rejected), approvals by a second person, staging and
production deployments, drift alerts and retrainings on drift, retirements.

Deterministic for a seed (event ids included), and valid under the lifecycle rules,
so it goes through the ordinary append path. Used by the projection benchmark and
the crash test; handy for demos::

    from projections.synthetic import populate
    populate(log, models=50, rounds=10)
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from ledger.append import Appender, decide
from ledger.events import (
    ApprovalRejected,
    ColumnSpec,
    DataContract,
    DataSnapshotted,
    DriftDetected,
    Event,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
    ModelTrained,
)
from ledger.log import EventLog

CONTRACT = DataContract(
    columns=(ColumnSpec(name="tenure", unit="month"), ColumnSpec(name="spend", unit="EUR"), ColumnSpec(name="churned", dtype="int")),
    sampling="one row per customer per month",
    target="churned",
)

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def model_rounds(model: str, rounds: int, rng: random.Random, *, retire_model: bool = False) -> Iterator[list[Event]]:
    """The drafts of ``model``'s life, one list per round (one append each)."""

    def ident() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    version = 0
    alert: str | None = None
    live: list[int] = []
    for number in range(1, rounds + 1):
        snapshot_id = f"{model}-s{number}"
        version += 1
        drafts: list[Event] = [
            DataSnapshotted(
                event_id=ident(), model=model, actor="etl", dataset=f"customers-{model[-1]}",
                snapshot_id=snapshot_id, content_hash=f"sha256:{rng.getrandbits(64):016x}",
                row_count=rng.randint(1_000, 100_000), contract=CONTRACT,
            ),
            ModelTrained(
                event_id=ident(), model=model, version=version, actor="trainer",
                snapshot_ids=(snapshot_id,), code_ref=f"git:{rng.getrandbits(40):010x}",
                hyperparameters={"max_depth": rng.randint(2, 8), "n_estimators": 100},
                artifact_uri=f"s3://models/{model}/v{version}", artifact_hash=f"sha256:{rng.getrandbits(64):016x}",
                parent_version=version - 1 if version > 1 else None,
                trigger="drift" if alert else "manual", trigger_alert_id=alert,
            ),
        ]
        passed = rng.random() > 0.15
        auc = round(rng.uniform(0.8, 0.95) if passed else rng.uniform(0.5, 0.69), 4)
        drafts.append(
            ModelEvaluated(
                event_id=ident(), model=model, version=version, actor="ci", evaluation_snapshot_id=snapshot_id,
                metrics={"auc": auc, "f1": round(auc - 0.1, 4)}, thresholds={"auc": 0.7}, passed=passed,
            )
        )
        if not passed:
            drafts.append(ApprovalRejected(event_id=ident(), model=model, version=version, actor="reviewer", reason="below policy"))
            yield drafts
            continue
        drafts.append(ModelApproved(event_id=ident(), model=model, version=version, actor="reviewer", reason="meets policy"))
        drafts.append(ModelDeployed(event_id=ident(), model=model, version=version, actor="deployer", environment="staging"))
        drafts.append(ModelDeployed(event_id=ident(), model=model, version=version, actor="deployer", environment="production"))
        drift = DriftDetected(
            event_id=ident(), model=model, version=version, actor="monitor", environment="production",
            metric="psi", feature="spend", value=round(rng.uniform(0.2, 0.6), 4), threshold=0.2,
            reference_snapshot_id=snapshot_id,
        )
        drafts.append(drift)
        alert = str(drift.event_id)
        live.append(version)
        if len(live) > 2 and rng.random() < 0.5:
            old = live.pop(0)
            drafts.append(ModelRetired(event_id=ident(), model=model, version=old, actor="owner", reason="superseded"))
        yield drafts
    if retire_model:
        yield [ModelRetired(event_id=ident(), model=model, actor="owner", reason="product discontinued")]


def _schedule(
    models: int, rounds: int, seed: int, prefix: str, start: datetime, step: timedelta
) -> Iterator[tuple[list[Event], datetime]]:
    """The lives of ``models`` models (``{prefix}-0000``…), interleaved round by
    round: each model append with its time, one ``step`` after the previous one."""
    rng = random.Random(seed)
    names = [f"{prefix}-{i:04d}" for i in range(models)]
    lives = [model_rounds(name, rounds, rng, retire_model=(i % 10 == 9)) for i, name in enumerate(names)]
    at = start
    while lives:
        remaining = []
        for life in lives:
            drafts = next(life, None)
            if drafts is None:
                continue
            remaining.append(life)
            yield drafts, at
            at += step
        lives = remaining


def populate(
    log: EventLog,
    *,
    models: int,
    rounds: int,
    seed: int = 7,
    prefix: str = "model",
    start: datetime = START,
    step: timedelta = timedelta(minutes=1),
) -> int:
    """Append the lives of ``models`` models (``{prefix}-0000``…) to ``log``,
    interleaved round by round, each round one append recorded one ``step`` after
    the previous one (from ``start``); returns the number of events appended."""
    now = [start]
    appender = Appender(log, clock=lambda: now[0])
    appended = 0
    for drafts, at in _schedule(models, rounds, seed, prefix, start, step):
        now[0] = at
        appender.append([d.model_copy(update={"occurred_at": at}) for d in drafts])
        appended += len(drafts)
    return appended


def populate_rounds(
    log: EventLog,
    *,
    models: int,
    rounds: int,
    seed: int = 7,
    prefix: str = "model",
    start: datetime = START,
    step: timedelta = timedelta(minutes=1),
    per_commit: int = 1000,
) -> int:
    """:func:`populate`'s ledger (same lives, same times), appended as a group commit
    does it (:meth:`EventLog.append_round`: every event still decided by the rules,
    sequenced and chained), ``per_commit`` model appends per transaction instead of
    one: how a benchmark builds a million-event log in minutes rather than hours.
    Needs a backend with group commit (the embedded log)."""
    appender = Appender(log)
    appended = 0
    pending: list[tuple[list[Event], datetime]] = []

    def commit(appends: list[tuple[list[Event], datetime]]) -> None:
        outcome: dict = {}

        def plan(views):
            states: dict = {}
            records = []
            for drafts, at in appends:
                model = drafts[0].model
                view = views(model)
                state = states.get(model) or appender.state(view, model)
                drafts = [d.model_copy(update={"occurred_at": at}) for d in drafts]
                decision = decide(state, view.find, drafts, clock=lambda at=at: at)
                states[model] = decision.state
                records.extend(decision.records)
            outcome["snapshots"] = {m: appender.keep_snapshot(views(m), state) for m, state in states.items()}
            outcome["states"] = states
            return records

        log.append_round(0, plan)
        for model, state in outcome["states"].items():
            appender.remember(model, state, outcome["snapshots"].get(model))

    for drafts, at in _schedule(models, rounds, seed, prefix, start, step):
        pending.append((drafts, at))
        appended += len(drafts)
        if len(pending) >= per_commit:
            commit(pending)
            pending = []
    if pending:
        commit(pending)
    return appended
