"""Registering data and checking it for drift, through the ledger's append path.

What ``ledger data snapshot`` and ``ledger drift check`` call. The decisions are in
the pure modules (:mod:`ledger.data.datasets` checks and summarises, :mod:`ledger.data.drift`
scores); this module reads the model's stream, stores the data file and appends.

Both operations are safe to repeat:

* a snapshot's id defaults to ``<dataset>-<hash prefix>``, so registering the same
  data again finds the snapshot already there and reuses it;
* a drift alert's event id is derived from what it is about (model, version,
  environment, current snapshot, metric, threshold), so checking the same data
  twice records one alert — and the retraining consumer retrains once.

A drift check appends its new snapshot and its alert in one atomic append: either
both are recorded or neither (e.g. when the version is not deployed in that
environment, the lifecycle rules refuse the alert and the snapshot is not kept).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ledger import rules
from ledger.data import datasets, drift
from ledger.append import Accepted
from ledger.errors import NotFound, RuleViolation
from ledger.events import DataContract, DataSnapshotted, DriftDetected, Event, ModelTrained

_ALERT_NAMESPACE = uuid.UUID("5d0f3a8e-2b7c-4f61-9a0e-64726966740a")


def alert_id(model: str, version: int, environment: str, snapshot_id: str, metric: str, threshold: float) -> uuid.UUID:
    key = "\x00".join([model, str(version), environment, snapshot_id, metric, repr(float(threshold))])
    return uuid.uuid5(_ALERT_NAMESPACE, key)


def snapshots_of(stream: Iterable[Event]) -> dict[str, DataSnapshotted]:
    return {e.snapshot_id: e for e in stream if isinstance(e, DataSnapshotted)}


def reference_of(stream: list[Event], model: str, version: int) -> tuple[ModelTrained, DataSnapshotted]:
    """The training event of ``model@version`` and the snapshot it was trained on
    (the first of its ``snapshot_ids``): the reference for drift."""
    trained = next((e for e in stream if isinstance(e, ModelTrained) and e.version == version), None)
    if trained is None:
        raise NotFound(f"model {model!r} has no version {version}")
    snapshot = snapshots_of(stream).get(trained.snapshot_ids[0])
    if snapshot is None:
        raise NotFound(f"{model}@{version}'s training snapshot {trained.snapshot_ids[0]!r} is not in the stream")
    return trained, snapshot


@dataclass(frozen=True)
class Registered:
    snapshot: DataSnapshotted
    created: bool
    """False when the same data was already registered under this id."""
    accepted: Accepted | None = None


def _prepare_snapshot(
    stream: list[Event],
    data: datasets.Dataset,
    *,
    model: str,
    dataset: str,
    actor: str,
    snapshot_id: str | None,
    store: datasets.DataStore,
) -> tuple[DataSnapshotted, bool]:
    """The existing snapshot of this data, or a new draft (data stored).

    The same data under the same contract is one snapshot, whatever id or dataset
    name a later registration asks for: a second id for it would split its lineage
    (what was trained on it, what drifted from it) in two."""
    sid = snapshot_id or datasets.default_snapshot_id(dataset, data.content_hash)
    known = snapshots_of(stream)
    existing = known.get(sid)
    if existing is None:
        existing = next(
            (s for s in known.values() if s.content_hash == data.content_hash and s.contract == data.contract),
            None,
        )
    if existing is not None:
        if existing.content_hash != data.content_hash:
            raise RuleViolation(
                rules.SNAPSHOT_UNIQUE,
                f"snapshot {sid!r} of {model!r} already holds other data ({existing.content_hash})",
            )
        return existing, False
    uri = store.put(data)
    return datasets.snapshot_event(data, model=model, dataset=dataset, actor=actor, uri=uri, snapshot_id=sid), True


def register_snapshot(
    ledger,
    model: str,
    *,
    dataset: str,
    contract: DataContract,
    path: str | Path,
    actor: str,
    snapshot_id: str | None = None,
    store: datasets.DataStore | None = None,
) -> Registered:
    """Check a CSV file against ``contract``, store it and record ``DataSnapshotted``."""
    data = datasets.validate(datasets.read_csv(path), contract)
    for attempt in range(2):
        stream = list(ledger.events(model))
        snapshot, new = _prepare_snapshot(
            stream, data, model=model, dataset=dataset, actor=actor, snapshot_id=snapshot_id,
            store=store or datasets.DataStore(),
        )
        if not new:
            return Registered(snapshot, False)
        try:
            accepted = ledger.emit(snapshot)
        except RuleViolation as exc:
            if attempt or exc.rule != rules.SNAPSHOT_UNIQUE:
                raise
            continue  # someone registered it meanwhile: read again, reuse theirs
        return Registered(accepted.event, True, accepted)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class DriftCheck:
    report: drift.DriftReport
    reference: DataSnapshotted
    snapshot: DataSnapshotted
    snapshot_created: bool
    alert: DriftDetected | None
    """The recorded alert (new or found), None when no threshold was crossed."""
    alert_created: bool = False

    @property
    def crossed(self) -> bool:
        return self.report.crossed


def check_drift(
    ledger,
    model: str,
    version: int,
    path: str | Path,
    *,
    environment: str = "production",
    metric: str = "psi",
    thresholds: drift.Thresholds | None = None,
    actor: str = "monitor",
    store: datasets.DataStore | None = None,
) -> DriftCheck:
    """Compare new data with the reference snapshot of ``model@version``; register it
    as a snapshot of the same dataset, and record ``DriftDetected`` if the chosen
    metric's worst feature reaches its threshold."""
    stream = list(ledger.events(model))
    _, reference = reference_of(stream, model, version)
    # The same refusal the alert would meet, asked first: otherwise a check of a
    # version that does not serve there says "no drift" (and keeps the data) on
    # calm data and is refused on shifted data.
    serving = ledger.state(model).deployed.get(environment)
    if serving != version:
        now = f"version {serving} is" if serving else "nothing is"
        raise RuleViolation(rules.DRIFT_ON_DEPLOYED, f"{model}@{version} is not deployed to {environment} ({now})")
    data = datasets.validate(datasets.read_csv(path), reference.contract)
    report = drift.compare(
        reference.feature_stats,
        {name: data.columns[name].values for name in data.feature_names},
        metric=metric,
        thresholds=thresholds,
    )
    store = store or datasets.DataStore()
    try:
        return _record_check(ledger, stream, data, report, reference, model, version, environment, metric, actor, store)
    except RuleViolation as exc:
        if exc.rule not in (rules.SNAPSHOT_UNIQUE, "event-id-unique"):
            raise
    # Another check of the same data won the race: read again and reuse what it recorded.
    stream = list(ledger.events(model))
    return _record_check(ledger, stream, data, report, reference, model, version, environment, metric, actor, store)


def _record_check(ledger, stream, data, report, reference, model, version, environment, metric, actor, store) -> DriftCheck:
    snapshot, new = _prepare_snapshot(
        stream, data, model=model, dataset=reference.dataset, actor=actor, snapshot_id=None, store=store
    )
    drafts: list[Event] = [snapshot] if new else []
    alert: DriftDetected | None = None
    alert_created = False
    if report.crossed:
        event_id = alert_id(model, version, environment, snapshot.snapshot_id, metric, report.threshold)
        alert = next((e for e in stream if e.event_id == event_id and isinstance(e, DriftDetected)), None)
        if alert is None:
            drafts.append(
                report.event(
                    model=model,
                    version=version,
                    environment=environment,
                    actor=actor,
                    reference_snapshot_id=reference.snapshot_id,
                    current_snapshot_id=snapshot.snapshot_id,
                    event_id=event_id,
                )
            )
    if drafts:
        accepted = ledger.emit_many(drafts)
        by_type = {a.event.event_type: a.event for a in accepted}
        snapshot = by_type.get(DataSnapshotted.event_type, snapshot)
        if DriftDetected.event_type in by_type:
            alert, alert_created = by_type[DriftDetected.event_type], True
    return DriftCheck(report, reference, snapshot, new, alert, alert_created)
