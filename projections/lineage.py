"""The lineage view: a graph of typed nodes and typed edges, pointing downstream.

::

    dataset ─contains→ snapshot ─input→ training_run ─produced→ model_version
    model_version ─parent_of→ model_version            (a retraining)
    model_version ─evaluated→ evaluation ←evaluated_on─ snapshot
    evaluation ─reviewed→ approval ─deployed→ deployment ─observed→ drift_alert
    snapshot ─reference_for→ drift_alert               (the data drift was measured against)
    drift_alert ─triggered→ training_run               (a retraining on drift)
    deployment ─observed→ feedback ←feedback_data─ snapshot   (field outcomes)
    feedback ─raised→ degradation_alert ─triggered→ training_run  (a retraining on degradation)

Node ids are readable and stable (``version:churn@3``, ``snapshot:churn/2026-03``,
``evaluation:churn/<event id>``): everything but a dataset belongs to one model
stream, so no row depends on how partitions interleave. A dataset node is shared by
every model that snapshots the dataset; it carries only its name.

When a review has no evaluation to hang from (a rejection without one), or a drift
alert no deployment (only by forgery), the edge starts at the version instead, so no
node is ever left unconnected.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from ledger.events import (
    ApprovalRejected,
    DataSnapshotted,
    DriftDetected,
    FeedbackRecorded,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelTrained,
    PerformanceDegraded,
)
from projections import bulk
from projections.base import Item, Projection, as_json
from projections.tables import lin_edges, lin_nodes

KINDS = (
    "dataset",
    "snapshot",
    "training_run",
    "model_version",
    "evaluation",
    "approval",
    "deployment",
    "drift_alert",
    "feedback",
    "degradation_alert",
)


def dataset_node(name: str) -> str:
    return f"dataset:{name}"


def snapshot_node(model: str, snapshot_id: str) -> str:
    return f"snapshot:{model}/{snapshot_id}"


def version_node(model: str, version: int) -> str:
    return f"version:{model}@{version}"


def run_node(model: str, event_id: str) -> str:
    return f"run:{model}/{event_id}"


def evaluation_node(model: str, event_id: str) -> str:
    return f"evaluation:{model}/{event_id}"


def approval_node(model: str, event_id: str) -> str:
    return f"approval:{model}/{event_id}"


def deployment_node(model: str, event_id: str) -> str:
    return f"deployment:{model}/{event_id}"


def drift_node(model: str, event_id: str) -> str:
    return f"drift:{model}/{event_id}"


def feedback_node(model: str, event_id: str) -> str:
    return f"feedback:{model}/{event_id}"


def degradation_node(model: str, event_id: str) -> str:
    return f"degradation:{model}/{event_id}"


_n = lin_nodes.c
_LATEST = (
    select(_n.node_id)
    .where(_n.model == bindparam("model"), _n.version == bindparam("version"), _n.kind == bindparam("kind"))
    .order_by(_n.offset.desc())
    .limit(1)
)
_LATEST_IN_ENVIRONMENT = _LATEST.where(_n.environment == bindparam("environment"))


class Lineage(Projection):
    name = "lineage"
    follows = frozenset(
        t.event_type
        for t in (
            DataSnapshotted, ModelTrained, ModelEvaluated, ModelApproved, ApprovalRejected, ModelDeployed, DriftDetected,
            FeedbackRecorded, PerformanceDegraded,
        )
    )

    def handlers(self):
        return {
            DataSnapshotted.event_type: self._snapshot,
            ModelTrained.event_type: self._trained,
            ModelEvaluated.event_type: self._evaluated,
            ModelApproved.event_type: self._reviewed,
            ApprovalRejected.event_type: self._reviewed,
            ModelDeployed.event_type: self._deployed,
            DriftDetected.event_type: self._drift,
            FeedbackRecorded.event_type: self._feedback,
            PerformanceDegraded.event_type: self._degraded,
        }

    # --- writing -----------------------------------------------------------------
    # A batch collects its nodes and edges and writes them in two bulk statements;
    # "the latest node of a version" is looked up among the nodes this run wrote
    # first, then in the table.

    def __init__(self):
        self._latest_known: dict[tuple, str | None] = {}
        """The latest node of (model, version, kind, environment) — or that there is
        none — as of the last batch applied, kept across the batches of one run."""

    def forget(self) -> None:
        self._latest_known = {}

    def apply(self, conn: Connection, items: Sequence[Item]) -> None:
        self._nodes: list[dict] = []
        self._edges: list[dict] = []
        try:
            super().apply(conn, items)
            # "Insert unless present": a forged copy of an event carries the same
            # event id, hence the same node and edge ids, and must not stop the fold.
            bulk.insert_ignore(conn, lin_nodes, self._nodes)
            bulk.insert_ignore(conn, lin_edges, self._edges)
        finally:
            del self._nodes, self._edges

    def _node(self, item: Item, node_id: str, kind: str, label: str, attrs: dict, *, version=None, environment=None) -> None:
        self._nodes.append(
            {
                "node_id": node_id,
                "kind": kind,
                "model": item.event.model,
                "version": version,
                "environment": environment,
                "label": label,
                "attrs": as_json(attrs),
                "recorded_at": item.at,
                "partition": item.partition,
                "offset": item.offset,
            }
        )
        if version is not None:
            self._latest_known[(item.event.model, version, kind, None)] = node_id
            if environment is not None:
                self._latest_known[(item.event.model, version, kind, environment)] = node_id

    def _edge(self, item: Item, src: str, dst: str, kind: str) -> None:
        self._edges.append(
            {
                "src": src,
                "dst": dst,
                "kind": kind,
                "model": item.event.model,
                "recorded_at": item.at,
                "partition": item.partition,
                "offset": item.offset,
            }
        )

    def _latest(self, conn: Connection, model: str, version: int, kind: str, environment: str | None = None) -> str | None:
        """The most recent node of ``kind`` for the version (stream order)."""
        key = (model, version, kind, environment)
        if key in self._latest_known:
            return self._latest_known[key]
        params = {"model": model, "version": version, "kind": kind}
        if environment is None:
            found = conn.execute(_LATEST, params).scalar()
        else:
            found = conn.execute(_LATEST_IN_ENVIRONMENT, {**params, "environment": environment}).scalar()
        # "None yet" is kept too: only this run's own later nodes can change it.
        self._latest_known[key] = found
        return found

    # --- handlers ----------------------------------------------------------------

    def _snapshot(self, conn: Connection, item: Item) -> None:
        e: DataSnapshotted = item.event
        node = snapshot_node(e.model, e.snapshot_id)
        dataset = {  # shared by every model: nothing in it depends on which model came first
            "node_id": dataset_node(e.dataset),
            "kind": "dataset",
            "model": None,
            "version": None,
            "environment": None,
            "label": e.dataset,
            "attrs": as_json({"dataset": e.dataset}),
            "recorded_at": None,
            "partition": None,
            "offset": None,
        }
        attrs = {
            "dataset": e.dataset,
            "snapshot_id": e.snapshot_id,
            "content_hash": e.content_hash,
            "row_count": e.row_count,
            "uri": e.uri,
            "columns": [c.name for c in e.contract.columns],
            "recorded_by": e.actor,
        }
        self._nodes.append(dataset)
        self._node(item, node, "snapshot", f"{e.dataset} snapshot {e.snapshot_id}", attrs)
        self._edge(item, dataset_node(e.dataset), node, "contains")

    def _trained(self, conn: Connection, item: Item) -> None:
        e: ModelTrained = item.event
        run = run_node(e.model, item.event_id)
        version = version_node(e.model, e.version)
        run_attrs = {
            "code_ref": e.code_ref,
            "hyperparameters": dict(e.hyperparameters),
            "trigger": e.trigger,
            "trained_by": e.actor,
            "snapshot_ids": list(e.snapshot_ids),
        }
        version_attrs = {
            "artifact_uri": e.artifact_uri,
            "artifact_hash": e.artifact_hash,
            "code_ref": e.code_ref,
            "parent_version": e.parent_version,
        }
        self._node(item, run, "training_run", f"training of {e.model}@{e.version}", run_attrs, version=e.version)
        self._node(item, version, "model_version", f"{e.model}@{e.version}", version_attrs, version=e.version)
        for snapshot_id in dict.fromkeys(e.snapshot_ids):
            self._edge(item, snapshot_node(e.model, snapshot_id), run, "input")
        self._edge(item, run, version, "produced")
        if e.parent_version is not None:
            self._edge(item, version_node(e.model, e.parent_version), version, "parent_of")
        if e.trigger_alert_id:
            alert = degradation_node if e.trigger == "degradation" else drift_node
            self._edge(item, alert(e.model, e.trigger_alert_id), run, "triggered")

    def _evaluated(self, conn: Connection, item: Item) -> None:
        e: ModelEvaluated = item.event
        node = evaluation_node(e.model, item.event_id)
        attrs = {
            "metrics": dict(e.metrics),
            "thresholds": dict(e.thresholds),
            "passed": e.passed,
            "evaluation_snapshot_id": e.evaluation_snapshot_id,
            "evaluated_by": e.actor,
        }
        verdict = "passed" if e.passed else "failed"
        self._node(item, node, "evaluation", f"evaluation of {e.model}@{e.version}: {verdict}", attrs, version=e.version)
        self._edge(item, version_node(e.model, e.version), node, "evaluated")
        self._edge(item, snapshot_node(e.model, e.evaluation_snapshot_id), node, "evaluated_on")

    def _reviewed(self, conn: Connection, item: Item) -> None:
        e = item.event
        decision = "approved" if isinstance(e, ModelApproved) else "rejected"
        node = approval_node(e.model, item.event_id)
        source = self._latest(conn, e.model, e.version, "evaluation") or version_node(e.model, e.version)
        attrs = {"decision": decision, "by": e.actor, "reason": e.reason}
        self._node(item, node, "approval", f"{e.model}@{e.version} {decision} by {e.actor}", attrs, version=e.version)
        self._edge(item, source, node, "reviewed")

    def _deployed(self, conn: Connection, item: Item) -> None:
        e: ModelDeployed = item.event
        node = deployment_node(e.model, item.event_id)
        source = self._latest(conn, e.model, e.version, "approval") or version_node(e.model, e.version)
        attrs = {"environment": e.environment, "by": e.actor, "replaced_version": e.replaced_version}
        self._node(
            item, node, "deployment", f"{e.model}@{e.version} to {e.environment}", attrs,
            version=e.version, environment=e.environment,
        )
        self._edge(item, source, node, "deployed")

    def _drift(self, conn: Connection, item: Item) -> None:
        e: DriftDetected = item.event
        node = drift_node(e.model, item.event_id)
        source = self._latest(conn, e.model, e.version, "deployment", e.environment) or version_node(e.model, e.version)
        attrs = {
            "metric": e.metric,
            "feature": e.feature,
            "value": e.value,
            "threshold": e.threshold,
            "reference_snapshot_id": e.reference_snapshot_id,
            "current_snapshot_id": e.current_snapshot_id,
            "detected_by": e.actor,
        }
        self._node(
            item, node, "drift_alert", f"{e.metric} drift on {e.model}@{e.version} in {e.environment}", attrs,
            version=e.version, environment=e.environment,
        )
        self._edge(item, source, node, "observed")
        self._edge(item, snapshot_node(e.model, e.reference_snapshot_id), node, "reference_for")

    def _feedback(self, conn: Connection, item: Item) -> None:
        e: FeedbackRecorded = item.event
        node = feedback_node(e.model, item.event_id)
        source = self._latest(conn, e.model, e.version, "deployment", e.environment) or version_node(e.model, e.version)
        attrs = {
            "window_start": e.window_start.isoformat(),
            "window_end": e.window_end.isoformat(),
            "predictions": e.predictions,
            "alarms": e.alarms,
            "confirmed": e.confirmed,
            "unlabelled": e.unlabelled,
            "metrics": dict(e.metrics),
            "snapshot_id": e.snapshot_id,
            "reported_by": e.actor,
        }
        self._node(
            item, node, "feedback", f"field feedback on {e.model}@{e.version} in {e.environment}", attrs,
            version=e.version, environment=e.environment,
        )
        self._edge(item, source, node, "observed")
        self._edge(item, snapshot_node(e.model, e.snapshot_id), node, "feedback_data")

    def _degraded(self, conn: Connection, item: Item) -> None:
        e: PerformanceDegraded = item.event
        node = degradation_node(e.model, item.event_id)
        attrs = {
            "metric": e.metric,
            "value": e.value,
            "threshold": e.threshold,
            "bound": e.bound,
            "threshold_source": e.threshold_source,
            "feedback_event_id": e.feedback_event_id,
            "reported_by": e.actor,
        }
        self._node(
            item, node, "degradation_alert", f"{e.metric} degraded on {e.model}@{e.version} in {e.environment}", attrs,
            version=e.version, environment=e.environment,
        )
        self._edge(item, feedback_node(e.model, e.feedback_event_id), node, "raised")
