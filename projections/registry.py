"""The registry view: models, versions, their status over time, evaluations and
metrics, and what is deployed in each environment since when.

Status mirrors the lifecycle rules (:mod:`ledger.rules`): retired, else rejected,
else approved, else evaluated, else trained — with one addition the rules do not
need: an approved version deployed in at least one environment is ``deployed``. A
decision covers the evaluations before it: an evaluation recorded after one clears
it (the state's history keeps it), and the version is ``evaluated`` again, waiting
for a new decision.

A batch is folded in memory: the open state rows and open deployments of the
batch's models are read once, the events change them, and the batch ends with a
few multi-row statements — a row opened and closed inside the batch is inserted
closed. The rows are the same as if each event were written on its own.

The handlers never raise on an event that the rules would have refused (a version
number reused, an unknown version): such an event can only reach the log by forgery,
``ledger verify`` names it, and the audit view shows it; the registry keeps the
state the valid events built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from ledger.events import (
    BY_TYPE,
    ApprovalRejected,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
    ModelTrained,
)
from projections import bulk
from projections.base import Item, Projection, as_json, canonical_actor
from projections.tables import (
    reg_deployments,
    reg_evaluations,
    reg_metrics,
    reg_models,
    reg_version_states,
    reg_versions,
)

STATE_FIELDS = (
    "status",
    "evaluations",
    "last_evaluation_passed",
    "approved_by",
    "approved_at",
    "rejected_by",
    "rejected_at",
    "decision_reason",
    "deployed_in",
    "retired_by",
    "retired_at",
    "retire_reason",
)
"""The columns of ``reg_version_states`` that describe the version (the others say
when that description held)."""
_described = itemgetter(*STATE_FIELDS)


def status_of(state: dict) -> str:
    """The status a version's state implies (see the module docstring)."""
    if state.get("retired_at") is not None:
        return "retired"
    if state.get("rejected_by"):
        return "rejected"
    if state.get("approved_by"):
        return "deployed" if _environments(state.get("deployed_in") or "[]") else "approved"
    if state.get("evaluations"):
        return "evaluated"
    return "trained"


@lru_cache(maxsize=4096)
def _environments(deployed_in: str) -> tuple[str, ...]:
    """The environments of a ``deployed_in`` value, remembered: a run meets few
    distinct sets, and parsing one per state change was a tenth of the registry's time."""
    return tuple(json.loads(deployed_in))


@lru_cache(maxsize=4096)
def _with_env(deployed_in: str, environment: str, present: bool) -> str:
    environments = set(_environments(deployed_in))
    if present:
        environments.add(environment)
    else:
        environments.discard(environment)
    return as_json(sorted(environments))


_s, _d, _m = reg_version_states.c, reg_deployments.c, reg_models.c

_OPEN_STATES = select(reg_version_states).where(_s.model.in_(bindparam("models", expanding=True)), _s.to_offset.is_(None))
_OPEN_DEPLOYMENTS = select(reg_deployments).where(
    _d.model.in_(bindparam("models", expanding=True)), _d.ended_offset.is_(None)
)
_STATE_KEY = ("model", "version", "partition", "from_offset")
_DEPLOYMENT_KEY = ("partition", "offset", "environment")
_DEPLOYMENT_END = ("ended_at", "ended_offset", "ended_by", "end_reason")
_RETIRE_MODEL = (
    update(reg_models)
    .where(_m.model == bindparam("k_model"), _m.retired_offset.is_(None))
    .values(
        retired_at=bindparam("n_at"),
        retired_offset=bindparam("n_offset"),
        retired_by=bindparam("n_by"),
        retire_reason=bindparam("n_reason"),
    )
)


class _ByModel:
    """``(model, key) -> row``, grouped by model so that what one model needs (its
    open deployments, its versions) is found without looking at every other."""

    def __init__(self):
        self.by_model: dict[str, dict] = {}

    def get(self, key: tuple, default=None):
        return self.by_model.get(key[0], {}).get(key[1], default)

    def __getitem__(self, key: tuple):
        return self.by_model[key[0]][key[1]]

    def __contains__(self, key: tuple) -> bool:
        return key[1] in self.by_model.get(key[0], {})

    def __setitem__(self, key: tuple, row: dict) -> None:
        self.by_model.setdefault(key[0], {})[key[1]] = row

    def __delitem__(self, key: tuple) -> None:
        del self.by_model[key[0]][key[1]]

    def of(self, model: str) -> dict:
        return self.by_model.get(model, {})


class _OpenState:
    """The open state rows and open deployments of the models a run has seen, kept
    in memory across the batches of one run (the runner calls
    :meth:`Registry.forget` when the database may have changed under it)."""

    def __init__(self):
        self.states = _ByModel()
        self.deployments = _ByModel()
        self.loaded: set[str] = set()

    def load(self, conn: Connection, models: Sequence[str]) -> None:
        missing = sorted(set(models) - self.loaded)
        for start in range(0, len(missing), 10_000):
            chunk = missing[start : start + 10_000]
            for row in conn.execute(_OPEN_STATES, {"models": chunk}).mappings():
                self.states[(row["model"], row["version"])] = {**row, "_stored": True}
            for row in conn.execute(_OPEN_DEPLOYMENTS, {"models": chunk}).mappings():
                self.deployments[(row["model"], row["environment"])] = {**row, "_stored": True}
        self.loaded.update(missing)


class _Work:
    """One batch of the registry, folded in memory, written by :meth:`flush`."""

    def __init__(self, conn: Connection, models: Sequence[str], open_state: _OpenState | None = None):
        self.conn = conn
        open_state = open_state or _OpenState()
        open_state.load(conn, models)
        # (model, version) -> the open state row; (model, environment) -> the open deployment.
        self.states = open_state.states
        self.deployments = open_state.deployments
        self.new_states: list[dict] = []
        self.closed_states: list[dict] = []
        self.new_deployments: list[dict] = []
        self.ended_deployments: list[dict] = []
        self.models: list[dict] = []
        self.retired_models: list[dict] = []
        self.versions: list[dict] = []
        self.evaluations: list[dict] = []
        self.metrics: list[dict] = []

    # --- version states ----------------------------------------------------------

    def open_state(self, item: Item, model: str, version: int, **fields) -> None:
        row = {
            "model": model,
            "version": version,
            "partition": item.partition,
            "from_offset": item.offset,
            "to_offset": None,
            "valid_from": item.at,
            "valid_to": None,
            "evaluations": 0,
            "last_evaluation_passed": None,
            "approved_by": None,
            "approved_at": None,
            "rejected_by": None,
            "rejected_at": None,
            "decision_reason": None,
            "deployed_in": "[]",
            "retired_by": None,
            "retired_at": None,
            "retire_reason": None,
            "changed_by": item.event.actor,
            "change": item.event.event_type,
            **fields,
        }
        row["status"] = status_of(row)
        self.new_states.append(row)
        self.states[(model, version)] = row

    def change(self, item: Item, model: str, version: int, **changes) -> None:
        """Close the version's open state and open one with ``changes``."""
        current = self.states.get((model, version))
        if current is None:
            return
        new = {**current, **changes}
        new["status"] = status_of(new)
        if _described(new) == _described(current):
            return
        current["to_offset"] = item.offset
        current["valid_to"] = item.at
        if current.get("_stored"):
            self.closed_states.append(current)
        new.pop("_stored", None)
        new.update(
            partition=item.partition,
            from_offset=item.offset,
            to_offset=None,
            valid_from=item.at,
            valid_to=None,
            changed_by=item.event.actor,
            change=item.event.event_type,
        )
        self.new_states.append(new)
        self.states[(model, version)] = new

    # --- deployments ---------------------------------------------------------------

    def end_deployment(self, item: Item, deployment: dict, reason: str) -> None:
        deployment.update(ended_at=item.at, ended_offset=item.offset, ended_by=item.event.actor, end_reason=reason)
        if deployment.get("_stored"):
            self.ended_deployments.append(deployment)
        del self.deployments[(deployment["model"], deployment["environment"])]

    def open_deployments(self, model: str, version: int | None = None) -> list[dict]:
        return [
            d
            for _env, d in sorted(self.deployments.of(model).items())
            if version is None or d["version"] == version
        ]

    # --- writing -------------------------------------------------------------------

    def flush(self) -> None:
        conn = self.conn
        bulk.update(conn, reg_version_states, self.closed_states, keys=_STATE_KEY, columns=("to_offset", "valid_to"))
        bulk.update(conn, reg_deployments, self.ended_deployments, keys=_DEPLOYMENT_KEY, columns=_DEPLOYMENT_END)
        bulk.insert_ignore(conn, reg_models, self.models)
        if self.retired_models:
            conn.execute(_RETIRE_MODEL, self.retired_models)
        for table, rows in (
            (reg_versions, self.versions),
            (reg_version_states, self.new_states),
            (reg_evaluations, self.evaluations),
            (reg_metrics, self.metrics),
            (reg_deployments, self.new_deployments),
        ):
            bulk.insert(conn, table, rows)
        # Written now: a later batch of the run closes them with an UPDATE.
        for row in self.new_states:
            row["_stored"] = True
        for row in self.new_deployments:
            row["_stored"] = True


class Registry(Projection):
    name = "registry"
    follows = frozenset(BY_TYPE)

    def handlers(self):
        return {
            ModelTrained.event_type: self._trained,
            ModelEvaluated.event_type: self._evaluated,
            ModelApproved.event_type: self._approved,
            ApprovalRejected.event_type: self._rejected,
            ModelDeployed.event_type: self._deployed,
            ModelRetired.event_type: self._retired,
            # DataSnapshotted only makes the model known; DriftDetected lives in
            # the lineage and audit views.
        }

    def __init__(self):
        self._open = _OpenState()

    def forget(self) -> None:
        self._open = _OpenState()

    def apply(self, conn: Connection, items: Sequence[Item]) -> None:
        models = {item.event.model for item in items if item.event is not None}
        self._work = _Work(conn, sorted(models), self._open)
        try:
            super().apply(conn, items)
            self._work.flush()
        finally:
            del self._work

    def process_event(self, conn: Connection, item: Item) -> None:
        if item.first:
            event = item.event
            self._work.models.append(
                {
                    "model": event.model,
                    "created_at": item.at,
                    "created_by": event.actor,
                    "partition": item.partition,
                    "created_offset": item.offset,
                }
            )
        super().process_event(conn, item)

    # --- handlers ----------------------------------------------------------------

    def _trained(self, conn: Connection, item: Item) -> None:
        e: ModelTrained = item.event
        work = self._work
        if (e.model, e.version) in work.states:
            return  # a reused version number: refused by the rules, so forged
        work.versions.append(
            {
                "model": e.model,
                "version": e.version,
                "trained_at": item.at,
                "trained_by": e.actor,
                "trained_by_canonical": canonical_actor(e.actor),
                "partition": item.partition,
                "trained_offset": item.offset,
                "event_id": item.event_id,
                "code_ref": e.code_ref,
                "artifact_uri": e.artifact_uri,
                "artifact_hash": e.artifact_hash,
                "parent_version": e.parent_version,
                "trigger": e.trigger,
                "trigger_alert_id": e.trigger_alert_id,
                "snapshot_ids": as_json(list(e.snapshot_ids)),
                "hyperparameters": as_json(dict(e.hyperparameters)),
            }
        )
        work.open_state(item, e.model, e.version)

    def _evaluated(self, conn: Connection, item: Item) -> None:
        e: ModelEvaluated = item.event
        work = self._work
        current = work.states.get((e.model, e.version))
        if current is None:
            return
        work.evaluations.append(
            {
                "model": e.model,
                "version": e.version,
                "partition": item.partition,
                "offset": item.offset,
                "event_id": item.event_id,
                "evaluated_at": item.at,
                "evaluated_by": e.actor,
                "evaluation_snapshot_id": e.evaluation_snapshot_id,
                "passed": e.passed,
            }
        )
        work.metrics.extend(
            {
                "partition": item.partition,
                "offset": item.offset,
                "metric": name,
                "model": e.model,
                "version": e.version,
                "value": e.metrics.get(name),
                "threshold": e.thresholds.get(name),
            }
            for name in sorted(set(e.metrics) | set(e.thresholds))
        )
        # An approval or rejection stands for the evaluations before it: a later one
        # leaves the version waiting for a new decision (as ledger.rules holds).
        work.change(
            item, e.model, e.version,
            evaluations=current["evaluations"] + 1, last_evaluation_passed=e.passed,
            approved_by=None, approved_at=None, rejected_by=None, rejected_at=None, decision_reason=None,
        )

    def _approved(self, conn: Connection, item: Item) -> None:
        e: ModelApproved = item.event
        self._work.change(
            item, e.model, e.version,
            approved_by=e.actor, approved_at=item.at, rejected_by=None, rejected_at=None, decision_reason=e.reason,
        )

    def _rejected(self, conn: Connection, item: Item) -> None:
        e: ApprovalRejected = item.event
        self._work.change(item, e.model, e.version, rejected_by=e.actor, rejected_at=item.at, decision_reason=e.reason)

    def _deployed(self, conn: Connection, item: Item) -> None:
        e: ModelDeployed = item.event
        work = self._work
        current = work.states.get((e.model, e.version))
        if current is None:
            return
        previous = work.deployments.get((e.model, e.environment))
        if previous is not None:
            work.end_deployment(item, previous, f"replaced by v{e.version}")
            old = work.states.get((e.model, previous["version"]))
            if previous["version"] != e.version and old is not None:
                work.change(item, e.model, previous["version"], deployed_in=_with_env(old["deployed_in"], e.environment, False))
        deployment = {
            "model": e.model,
            "environment": e.environment,
            "partition": item.partition,
            "offset": item.offset,
            "version": e.version,
            "event_id": item.event_id,
            "deployed_at": item.at,
            "deployed_by": e.actor,
            "replaced_version": previous["version"] if previous is not None else None,
            "ended_at": None,
            "ended_offset": None,
            "ended_by": None,
            "end_reason": None,
        }
        work.new_deployments.append(deployment)
        work.deployments[(e.model, e.environment)] = deployment
        current = work.states[(e.model, e.version)]
        work.change(item, e.model, e.version, deployed_in=_with_env(current["deployed_in"], e.environment, True))

    def _retired(self, conn: Connection, item: Item) -> None:
        e: ModelRetired = item.event
        work = self._work
        retired = {"retired_by": e.actor, "retired_at": item.at, "retire_reason": e.reason, "deployed_in": "[]"}
        if e.version is not None:
            for deployment in work.open_deployments(e.model, e.version):
                work.end_deployment(item, deployment, f"v{e.version} retired")
            work.change(item, e.model, e.version, **retired)
            return
        work.retired_models.append(
            {"k_model": e.model, "n_at": item.at, "n_offset": item.offset, "n_by": e.actor, "n_reason": e.reason}
        )
        for deployment in work.open_deployments(e.model):
            work.end_deployment(item, deployment, "model retired")
        versions = sorted(v for v, state in work.states.of(e.model).items() if state["retired_at"] is None)
        for version in versions:
            work.change(item, e.model, version, **retired)
