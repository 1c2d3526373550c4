"""Questions operators and auditors ask of the views, answered as plain dicts.

Every function takes the database (an ``Engine`` or an open ``Connection``) and an
optional ``as_of`` (:class:`projections.asof.AsOf`): the answer is then the one the
views gave at that instant or log position, read from the validity intervals the
folds keep — no replay needed. (For an answer independent of any projection
database, fold the log with :func:`projections.runner.build` and ask the result.)

All values reach the database as bound parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Integer, Text, and_, cast, false, func, literal, not_, or_, select, true
from sqlalchemy.engine import Connection, Engine

from ledger.identity import canonical
from ledger.errors import InputError, NotFound
from ledger.parsing import parse_instant, parse_target
from projections import db as _db
from projections import lineage as _lineage
from projections.asof import AsOf, iso
from projections.tables import (
    field_alerts,
    field_feedback,
    audit_events,
    lin_edges,
    lin_nodes,
    meta,
    positions,
    quarantine,
    reg_deployments,
    reg_evaluations,
    reg_metrics,
    reg_models,
    reg_version_states,
    reg_versions,
)

MAX_DEPTH = 1000
"""Depth of an unbounded lineage walk: far beyond any real history, and a bound
that ends the walk even if forged events made the graph cyclic."""

DIRECTIONS = ("up", "down")


@contextmanager
def _connection(database: Engine | Connection) -> Iterator[Connection]:
    if isinstance(database, Connection):
        yield database
        return
    with _db.errors("querying the views", database), database.connect() as conn:
        yield conn


def _known(as_of: AsOf | None, at, partition, offset):
    """The row was written by an event inside the cut."""
    if as_of is None:
        return true()
    if as_of.is_time:
        return and_(at.is_not(None), at <= as_of.time)
    clauses = [and_(partition == p, offset <= o) for p, o in sorted(as_of.positions.items())]
    return or_(*clauses) if clauses else false()


def _open(as_of: AsOf | None, ended_at, partition, ended_offset):
    """The interval the row describes had not ended at the cut."""
    if as_of is None:
        return ended_offset.is_(None)
    return or_(ended_offset.is_(None), not_(_known(as_of, ended_at, partition, ended_offset)))


def _ended(row: dict, as_of: AsOf | None, at_key: str, offset_key: str) -> bool:
    if row.get(offset_key) is None:
        return False
    if as_of is None:
        return True
    if as_of.is_time:
        return row[at_key] is not None and row[at_key] <= as_of.time
    last = as_of.positions.get(row["partition"])
    return last is not None and row[offset_key] <= last


def _loads(text: str | None, default):
    return json.loads(text) if text else default


def _state_of(row) -> dict:
    return {
        "status": row["status"],
        "since": row["valid_from"],
        "evaluations": row["evaluations"],
        "last_evaluation_passed": row["last_evaluation_passed"],
        "approved_by": row["approved_by"],
        "approved_at": row["approved_at"],
        "rejected_by": row["rejected_by"],
        "rejected_at": row["rejected_at"],
        "decision_reason": row["decision_reason"],
        "deployed_in": _loads(row["deployed_in"], []),
        "retired_by": row["retired_by"],
        "retired_at": row["retired_at"],
        "retire_reason": row["retire_reason"],
    }


def _states_as_of(as_of: AsOf | None):
    s = reg_version_states.c
    return and_(
        _known(as_of, s.valid_from, s.partition, s.from_offset),
        _open(as_of, s.valid_to, s.partition, s.to_offset),
    )


# --- registry ------------------------------------------------------------------------


def _model_row(conn: Connection, model: str, as_of: AsOf | None):
    m = reg_models.c
    row = conn.execute(
        select(reg_models).where(m.model == model, _known(as_of, m.created_at, m.partition, m.created_offset))
    ).mappings().first()
    if row is None:
        when = f" {as_of.describe()}" if as_of else ""
        raise NotFound(f"unknown model {model!r}{when}")
    return row


def _retired(row, as_of: AsOf | None) -> bool:
    return _ended(dict(row), as_of, "retired_at", "retired_offset")


def _deployed(conn: Connection, as_of: AsOf | None, model: str | None = None) -> dict[str, dict[str, int]]:
    d = reg_deployments.c
    query = select(d.model, d.environment, d.version).where(
        _known(as_of, d.deployed_at, d.partition, d.offset),
        _open(as_of, d.ended_at, d.partition, d.ended_offset),
    )
    if model is not None:
        query = query.where(d.model == model)
    found: dict[str, dict[str, int]] = {}
    for name, environment, version in conn.execute(query):
        found.setdefault(name, {})[environment] = version
    return found


def list_models(database: Engine | Connection, *, as_of: AsOf | None = None, environment: str | None = None) -> list[dict]:
    """Every model known at the cut: status, number of versions, latest version and
    what is deployed where (only models with a version deployed in ``environment``,
    when given)."""
    m, v = reg_models.c, reg_versions.c
    with _connection(database) as conn:
        counts = {
            name: (count, latest)
            for name, count, latest in conn.execute(
                select(v.model, func.count(), func.max(v.version))
                .where(_known(as_of, v.trained_at, v.partition, v.trained_offset))
                .group_by(v.model)
            )
        }
        deployed = _deployed(conn, as_of)
        rows = conn.execute(
            select(reg_models).where(_known(as_of, m.created_at, m.partition, m.created_offset)).order_by(m.model)
        ).mappings()
        result = []
        for row in rows:
            retired = _retired(row, as_of)
            count, latest = counts.get(row["model"], (0, None))
            result.append(
                {
                    "model": row["model"],
                    "status": "retired" if retired else "active",
                    "created_at": row["created_at"],
                    "created_by": row["created_by"],
                    "retired_at": row["retired_at"] if retired else None,
                    "versions": count,
                    "latest_version": latest,
                    "deployed": dict(sorted(deployed.get(row["model"], {}).items())),
                }
            )
        if environment is not None:
            result = [r for r in result if environment in r["deployed"]]
        return result


def model_versions(
    database: Engine | Connection, model: str, *, as_of: AsOf | None = None, environment: str | None = None
) -> list[dict]:
    """The versions of ``model`` at the cut, each with its status then (only those
    deployed in ``environment``, when given)."""
    v, s = reg_versions.c, reg_version_states.c
    with _connection(database) as conn:
        _model_row(conn, model, as_of)
        rows = conn.execute(
            select(reg_versions, reg_version_states)
            .join(reg_version_states, and_(s.model == v.model, s.version == v.version))
            .where(v.model == model, _known(as_of, v.trained_at, v.partition, v.trained_offset), _states_as_of(as_of))
            .order_by(v.version)
        ).mappings()
        versions = [
            {
                "model": row["model"],
                "version": row["version"],
                **_state_of(row),
                "trained_at": row["trained_at"],
                "trained_by": row["trained_by"],
                "parent_version": row["parent_version"],
                "code_ref": row["code_ref"],
                "snapshot_ids": _loads(row["snapshot_ids"], []),
                "trigger": row["trigger"],
            }
            for row in rows
        ]
        if environment is not None:
            versions = [v for v in versions if environment in v["deployed_in"]]
        return versions


def pending(database: Engine | Connection, *, model: str | None = None, as_of: AsOf | None = None) -> list[dict]:
    """Versions waiting for a decision at the cut: evaluated, and neither approved
    nor rejected since their latest evaluation (a decision goes stale when the
    version is evaluated again). Oldest model first, then by version."""
    names = [m["model"] for m in list_models(database, as_of=as_of) if m["status"] != "retired"]
    if model is not None:
        if model not in names and model not in {m["model"] for m in list_models(database, as_of=as_of)}:
            raise NotFound(f"unknown model {model!r}")
        names = [n for n in names if n == model]
    return [v for name in names for v in model_versions(database, name, as_of=as_of) if v["status"] == "evaluated"]


def _recorded_by(conn: Connection, model: str, event_ids: list[str]) -> dict[str, str]:
    """Event id → the principal that recorded it on its actor's behalf (event
    schema v4), for those of ``event_ids`` that another principal recorded."""
    if not event_ids:
        return {}
    a = audit_events.c
    rows = conn.execute(
        select(a.event_id, a.recorded_by).where(a.model == model, a.event_id.in_(event_ids), a.recorded_by.is_not(None))
    )
    return dict(rows.all())


def version_detail(database: Engine | Connection, model: str, version: int, *, as_of: AsOf | None = None) -> dict:
    """Everything the registry knows of one version at the cut: how it was trained,
    its state, the history of its states, its evaluations and metrics, and its
    deployments."""
    v, s, ev, mt, d = reg_versions.c, reg_version_states.c, reg_evaluations.c, reg_metrics.c, reg_deployments.c
    with _connection(database) as conn:
        _model_row(conn, model, as_of)
        facts = conn.execute(
            select(reg_versions).where(
                v.model == model, v.version == version, _known(as_of, v.trained_at, v.partition, v.trained_offset)
            )
        ).mappings().first()
        if facts is None:
            when = f" {as_of.describe()}" if as_of else ""
            raise NotFound(f"model {model!r} has no version {version}{when}")
        history = [
            dict(r)
            for r in conn.execute(
                select(reg_version_states)
                .where(s.model == model, s.version == version, _known(as_of, s.valid_from, s.partition, s.from_offset))
                .order_by(s.from_offset)
            ).mappings()
        ]
        current = history[-1]
        evaluations = []
        for row in conn.execute(
            select(reg_evaluations)
            .where(ev.model == model, ev.version == version, _known(as_of, ev.evaluated_at, ev.partition, ev.offset))
            .order_by(ev.offset)
        ).mappings():
            metrics = conn.execute(
                select(mt.metric, mt.value, mt.threshold)
                .where(mt.partition == row["partition"], mt.offset == row["offset"])
                .order_by(mt.metric)
            ).all()
            evaluations.append(
                {
                    "event_id": row["event_id"],
                    "evaluated_at": row["evaluated_at"],
                    "evaluated_by": row["evaluated_by"],
                    "evaluation_snapshot_id": row["evaluation_snapshot_id"],
                    "passed": row["passed"],
                    "metrics": {name: value for name, value, _ in metrics},
                    "thresholds": {name: threshold for name, _, threshold in metrics if threshold is not None},
                }
            )
        on_behalf = _recorded_by(conn, model, [e["event_id"] for e in evaluations])
        evaluations = [{**e, "recorded_by": on_behalf.get(e["event_id"])} for e in evaluations]
        deployments = [
            _deployment(dict(r), as_of)
            for r in conn.execute(
                select(reg_deployments)
                .where(d.model == model, d.version == version, _known(as_of, d.deployed_at, d.partition, d.offset))
                .order_by(d.offset, d.environment)
            ).mappings()
        ]
        on_behalf = _recorded_by(conn, model, [d["event_id"] for d in deployments])
        deployments = [{**d, "recorded_by": on_behalf.get(d["event_id"])} for d in deployments]
        return {
            "model": model,
            "version": version,
            **_state_of(current),
            "trained_at": facts["trained_at"],
            "trained_by": facts["trained_by"],
            "trained_recorded_by": _recorded_by(conn, model, [facts["event_id"]]).get(facts["event_id"]),
            "event_id": facts["event_id"],
            "code_ref": facts["code_ref"],
            "artifact_uri": facts["artifact_uri"],
            "artifact_hash": facts["artifact_hash"],
            "parent_version": facts["parent_version"],
            "trigger": facts["trigger"],
            "trigger_alert_id": facts["trigger_alert_id"],
            "snapshot_ids": _loads(facts["snapshot_ids"], []),
            "hyperparameters": _loads(facts["hyperparameters"], {}),
            "history": [
                {
                    "status": r["status"],
                    "from": r["valid_from"],
                    "to": r["valid_to"] if _ended(r, as_of, "valid_to", "to_offset") else None,
                    "change": r["change"],
                    "by": r["changed_by"],
                }
                for r in history
            ],
            "evaluations": evaluations,
            "deployments": deployments,
        }


def _deployment(row: dict, as_of: AsOf | None) -> dict:
    ended = _ended(row, as_of, "ended_at", "ended_offset")
    return {
        "model": row["model"],
        "environment": row["environment"],
        "version": row["version"],
        "since": row["deployed_at"],
        "deployed_by": row["deployed_by"],
        "event_id": row["event_id"],
        "replaced_version": row["replaced_version"],
        "position": f"{row['partition']}:{row['offset']}",
        "ended_at": row["ended_at"] if ended else None,
        "ended_by": row["ended_by"] if ended else None,
        "end_reason": row["end_reason"] if ended else None,
    }


def deployments(
    database: Engine | Connection,
    *,
    model: str | None = None,
    environment: str | None = None,
    as_of: AsOf | None = None,
    history: bool = False,
) -> list[dict]:
    """What is deployed where at the cut, since when, by whom; who approved it and
    on which data and code it was trained. With ``history``, every deployment up to
    the cut, ended or not."""
    d, v, s = reg_deployments.c, reg_versions.c, reg_version_states.c
    with _connection(database) as conn:
        if model is not None:
            _model_row(conn, model, as_of)
        query = (
            select(reg_deployments, v.snapshot_ids, v.code_ref, v.trained_by, s.approved_by, s.approved_at, s.status)
            .join(reg_versions, and_(v.model == d.model, v.version == d.version))
            .outerjoin(reg_version_states, and_(s.model == d.model, s.version == d.version, _states_as_of(as_of)))
            .where(_known(as_of, d.deployed_at, d.partition, d.offset))
        )
        if not history:
            query = query.where(_open(as_of, d.ended_at, d.partition, d.ended_offset))
        if model is not None:
            query = query.where(d.model == model)
        if environment is not None:
            query = query.where(d.environment == environment)
        rows = conn.execute(query.order_by(d.model, d.environment, d.offset)).mappings()
        return [
            {
                **_deployment(dict(r), as_of),
                "status": r["status"],
                "approved_by": r["approved_by"],
                "approved_at": r["approved_at"],
                "trained_by": r["trained_by"],
                "code_ref": r["code_ref"],
                "snapshot_ids": _loads(r["snapshot_ids"], []),
            }
            for r in rows
        ]


# --- lineage -------------------------------------------------------------------------


def resolve_node(text: str) -> str:
    """A node id from what a user types: ``churn@3`` is version 3 of churn; any
    other form must be a node id (``snapshot:churn/2026-03``, ``dataset:customers``…)."""
    value = text.strip()
    prefixes = ("dataset:", "snapshot:", "run:", "version:", "evaluation:", "approval:", "deployment:", "drift:", "feedback:", "degradation:")
    if value.startswith(prefixes):
        return value
    if "@" in value:
        model, version = parse_target(text)  # as typed: MODEL@VERSION means the same in every command
        if version is not None:
            return _lineage.version_node(model, version)
    raise InputError(
        f"cannot tell which lineage node {text!r} is: use MODEL@VERSION (churn@3) or a node id "
        "such as snapshot:churn/2026-03 or dataset:customers"
    )


def lineage(
    database: Engine | Connection,
    node: str,
    *,
    direction: str = "up",
    depth: int | None = None,
    as_of: AsOf | None = None,
) -> dict:
    """The nodes upstream (what it came from) or downstream (what came of it) of
    ``node``, to ``depth`` edges (any depth when None), with the edges between
    them. The walk is one recursive SQL query."""
    if direction not in DIRECTIONS:
        raise InputError(f"lineage direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if depth is not None and depth < 0:
        raise InputError(f"lineage depth must not be negative, not {depth}")
    limit = MAX_DEPTH if depth is None else min(depth, MAX_DEPTH)
    n, e = lin_nodes.c, lin_edges.c
    with _connection(database) as conn:
        root = conn.execute(
            select(n.node_id).where(
                n.node_id == node,
                or_(n.recorded_at.is_(None), _known(as_of, n.recorded_at, n.partition, n.offset)),
            )
        ).scalar()
        if root is None:
            when = f" {as_of.describe()}" if as_of else ""
            raise NotFound(f"no lineage node {node!r}{when}")
        near, far = (e.src, e.dst) if direction == "down" else (e.dst, e.src)
        walk = select(
            cast(literal(node), Text).label("node_id"), cast(literal(0), Integer).label("depth")
        ).cte("walk", recursive=True)
        step = (
            select(far, walk.c.depth + 1)
            .select_from(lin_edges.join(walk, near == walk.c.node_id))
            .where(walk.c.depth < limit, _known(as_of, e.recorded_at, e.partition, e.offset))
        )
        walk = walk.union(step)
        reached = select(walk.c.node_id, func.min(walk.c.depth).label("depth")).group_by(walk.c.node_id).subquery()
        node_rows = conn.execute(
            select(reached.c.node_id, reached.c.depth, lin_nodes.c.kind, n.model, n.version, n.environment, n.label, n.attrs, n.recorded_at)
            .select_from(reached.outerjoin(lin_nodes, n.node_id == reached.c.node_id))
        ).mappings()
        nodes = sorted(
            (
                {
                    "node_id": r["node_id"],
                    "kind": r["kind"],
                    "depth": r["depth"],
                    "model": r["model"],
                    "version": r["version"],
                    "environment": r["environment"],
                    "label": r["label"] if r["label"] is not None else r["node_id"],
                    "attrs": _loads(r["attrs"], {}),
                    "recorded_at": r["recorded_at"],
                }
                for r in node_rows
            ),
            key=lambda x: (x["depth"], x["node_id"]),
        )
        # The edges the walk crossed: from a node reached before the depth limit
        # to a node reached (every edge inside the reached set points that way).
        inner = select(reached.c.node_id).where(reached.c.depth < limit)
        edge_rows = conn.execute(
            select(e.src, e.dst, e.kind, e.recorded_at)
            .where(near.in_(inner), far.in_(select(reached.c.node_id)), _known(as_of, e.recorded_at, e.partition, e.offset))
        ).mappings()
        edges = sorted((dict(r) for r in edge_rows), key=lambda x: (x["src"], x["dst"], x["kind"]))
        return {
            "root": node,
            "direction": direction,
            "depth": depth,
            "as_of": as_of.describe() if as_of else None,
            "nodes": nodes,
            "edges": edges,
        }


# --- audit ---------------------------------------------------------------------------


def _instant(value: str | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return iso(value)
    return iso(parse_instant(value))


def audit(
    database: Engine | Connection,
    *,
    model: str | None = None,
    actor: str | None = None,
    event_type: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    chain: str | None = None,
    as_of: AsOf | None = None,
    limit: int | None = None,
    version: int | None = None,
    newest_first: bool = False,
) -> list[dict]:
    """The audit trail in log order per partition, filtered. ``since``/``until``
    bound ``recorded_at`` (inclusive; a bare date is midnight UTC at its start). Unreadable records appear with ``event_type`` ``unreadable``."""
    a = audit_events.c
    start, end = _instant(since), _instant(until)
    if start and end and start > end:
        raise InputError("since is after until")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, not {limit}")
    query = select(audit_events).where(_known(as_of, a.recorded_at, a.partition, a.offset))
    if actor is not None:
        # One person, however the name was spelled when declared; and what a
        # principal recorded on others' behalf is part of what it did.
        who = canonical(actor)
        query = query.where(or_(a.actor_canonical == who, a.recorded_by_canonical == who))
    for column, value in ((a.model, model), (a.version, version), (a.event_type, event_type), (a.chain, chain)):
        if value is not None:
            query = query.where(column == value)
    if start is not None:
        query = query.where(a.recorded_at >= start)
    if end is not None:
        query = query.where(a.recorded_at <= end)
    # NULLS FIRST spelled out: SQLite and PostgreSQL disagree on the default.
    if newest_first:
        query = query.order_by(a.recorded_at.desc().nulls_last(), a.partition.desc(), a.offset.desc())
    else:
        query = query.order_by(a.recorded_at.asc().nulls_first(), a.partition, a.offset)
    if limit is not None:
        query = query.limit(limit)
    with _connection(database) as conn:
        return [
            {**{k: v for k, v in r.items() if k not in ("partition", "offset")}, "position": f"{r['partition']}:{r['offset']}"}
            for r in conn.execute(query).mappings()
        ]


def quarantined(database: Engine | Connection, *, as_of: AsOf | None = None) -> list[dict]:
    """Records the projector could not read, with their position and the reason."""
    q = quarantine.c
    with _connection(database) as conn:
        rows = conn.execute(
            select(quarantine).where(_known(as_of, q.appended_at, q.partition, q.offset)).order_by(q.partition, q.offset)
        ).mappings()
        return [
            {**{k: v for k, v in r.items() if k not in ("partition", "offset")}, "position": f"{r['partition']}:{r['offset']}"}
            for r in rows
        ]


def status(database: Engine | Connection) -> dict:
    """Where each projection stands, whether the views are a cut (``as_of``: the
    instant, or ``position P:O,…``), and how many records are quarantined."""
    p = positions.c
    with _connection(database) as conn:
        found: dict[str, dict[str, int]] = {}
        for name, partition, offset in conn.execute(select(p.projection, p.partition, p.offset).order_by(p.projection, p.partition)):
            found.setdefault(name, {})[str(partition)] = offset
        as_of = conn.execute(select(meta.c.value).where(meta.c.key == "as_of")).scalar()
        count = conn.execute(select(func.count()).select_from(quarantine)).scalar()
        return {"positions": found, "as_of": as_of, "quarantined": count}


# --- for the query commands ------------------------------------------------------------


def holds_views(database: Engine | Connection) -> bool:
    """Whether the database already holds views: projected records (the runner stores
    a position in the same transaction as every row it writes), or a cut, which may
    hold none (a cut before the first event)."""
    from sqlalchemy import inspect

    with _connection(database) as conn:
        if not inspect(conn).has_table(positions.name):
            return False
        if conn.execute(select(func.count()).select_from(positions)).scalar() > 0:
            return True
        return conn.execute(select(meta.c.value).where(meta.c.key == "as_of")).scalar() is not None


def latest_metrics(database: Engine | Connection, model: str, *, as_of: AsOf | None = None) -> dict[int, dict[str, float]]:
    """Per version of ``model``, the metrics of its latest evaluation at the cut."""
    ev, mt = reg_evaluations.c, reg_metrics.c
    query = (
        select(ev.version, ev.partition, ev.offset, mt.metric, mt.value)
        .select_from(reg_evaluations.join(reg_metrics, and_(mt.partition == ev.partition, mt.offset == ev.offset)))
        .where(ev.model == model, _known(as_of, ev.evaluated_at, ev.partition, ev.offset))
        .order_by(ev.offset, mt.metric)
    )
    found: dict[int, tuple[tuple[int, int], dict[str, float]]] = {}
    with _connection(database) as conn:
        for version, partition, offset, metric, value in conn.execute(query):
            where, metrics = found.get(version, (None, {}))
            if where != (partition, offset):
                metrics = {}
            metrics[metric] = value
            found[version] = ((partition, offset), metrics)
    return {version: metrics for version, (_, metrics) in sorted(found.items())}


def version_links(database: Engine | Connection, model: str, version: int, *, as_of: AsOf | None = None) -> dict:
    """What the lineage graph holds around one version at the cut: the snapshots it
    was trained on (dataset, content hash, row count), its reviews (approvals and
    rejections: who and why) and the drift alerts raised on it."""
    n, v = lin_nodes.c, reg_versions.c
    known = or_(n.recorded_at.is_(None), _known(as_of, n.recorded_at, n.partition, n.offset))
    with _connection(database) as conn:
        snapshot_ids = _loads(
            conn.execute(select(v.snapshot_ids).where(v.model == model, v.version == version)).scalar(), []
        )
        wanted = [_lineage.snapshot_node(model, s) for s in snapshot_ids]
        by_node = {
            r["node_id"]: r
            for r in conn.execute(select(lin_nodes).where(n.node_id.in_(wanted), known)).mappings()
        }
        snapshots = []
        for snapshot_id, node in zip(snapshot_ids, wanted, strict=True):
            row = by_node.get(node)
            attrs = _loads(row["attrs"], {}) if row is not None else {}
            snapshots.append(
                {
                    "snapshot_id": snapshot_id,
                    "dataset": attrs.get("dataset"),
                    "content_hash": attrs.get("content_hash"),
                    "row_count": attrs.get("row_count"),
                    "uri": attrs.get("uri"),
                    "recorded_at": row["recorded_at"] if row is not None else None,
                    "recorded_by": attrs.get("recorded_by"),
                }
            )

        def nodes(kind: str) -> list[dict]:
            rows = conn.execute(
                select(lin_nodes).where(n.model == model, n.version == version, n.kind == kind, known).order_by(n.offset)
            ).mappings()
            return [{**dict(r), "attrs": _loads(r["attrs"], {})} for r in rows]

        reviews = [
            {
                "decision": r["attrs"].get("decision"),
                "by": r["attrs"].get("by"),
                "reason": r["attrs"].get("reason"),
                "at": r["recorded_at"],
                "event_id": r["node_id"].rpartition("/")[2],
            }
            for r in nodes("approval")
        ]
        on_behalf = _recorded_by(conn, model, [r["event_id"] for r in reviews])
        reviews = [{**r, "recorded_by": on_behalf.get(r["event_id"])} for r in reviews]
        alerts = [
            {
                "event_id": r["node_id"].rpartition("/")[2],
                "at": r["recorded_at"],
                "environment": r["environment"],
                **{k: r["attrs"].get(k) for k in ("metric", "feature", "value", "threshold", "reference_snapshot_id", "current_snapshot_id", "detected_by")},
            }
            for r in nodes("drift_alert")
        ]
    return {"snapshots": snapshots, "reviews": reviews, "drift_alerts": alerts}


def version_document(
    database: Engine | Connection, model: str, version: int, *, verified: str, as_of: AsOf | None = None
) -> dict:
    """One version in full, as ``ledger show MODEL@N --json`` prints it and
    ``GET /v1/models/{model}/versions/{n}`` answers it (one function, so the two stay
    one document): :func:`version_detail`, ``verified`` (its stream's mark,
    :mod:`projections.trust`), :func:`version_links` and :func:`field_performance`."""
    document = {**version_detail(database, model, version, as_of=as_of), "verified": verified}
    document.update(version_links(database, model, version, as_of=as_of))
    document["field_performance"] = field_performance(database, model, version=version, as_of=as_of)
    return document


# --- field performance -------------------------------------------------------------


def field_performance(
    database: Engine | Connection, model: str | None = None, *, version: int | None = None, as_of: AsOf | None = None
) -> list[dict]:
    """Every feedback report at the cut (oldest first), each with the degradation
    alerts raised on it and the offline metrics of the version's latest
    evaluation at the cut, so field and offline numbers sit side by side."""
    f, a = field_feedback.c, field_alerts.c
    query = select(field_feedback).where(_known(as_of, f.recorded_at, f.partition, f.offset))
    if model is not None:
        query = query.where(f.model == model)
    if version is not None:
        query = query.where(f.version == version)
    with _connection(database) as conn:
        rows = [dict(r) for r in conn.execute(query.order_by(f.model, f.recorded_at, f.partition, f.offset)).mappings()]
        alerts: dict[str, list[dict]] = {}
        if rows:
            found = conn.execute(
                select(field_alerts)
                .where(a.feedback_event_id.in_([r["event_id"] for r in rows]), _known(as_of, a.recorded_at, a.partition, a.offset))
                .order_by(a.recorded_at, a.offset)
            ).mappings()
            for alert in found:
                alerts.setdefault(alert["feedback_event_id"], []).append(
                    {k: alert[k] for k in ("event_id", "recorded_at", "reported_by", "metric", "value", "threshold", "bound", "threshold_source")}
                )
        offline = {m: latest_metrics(conn, m, as_of=as_of) for m in sorted({r["model"] for r in rows})}
    return [
        {
            "model": r["model"],
            "version": r["version"],
            "environment": r["environment"],
            "event_id": r["event_id"],
            "recorded_at": r["recorded_at"],
            "reported_by": r["reported_by"],
            "window_start": r["window_start"],
            "window_end": r["window_end"],
            "predictions": r["predictions"],
            "alarms": r["alarms"],
            "confirmed": r["confirmed"],
            "unlabelled": r["unlabelled"],
            "metrics": _loads(r["metrics"], {}),
            "offline_metrics": offline[r["model"]].get(r["version"], {}),
            "snapshot_id": r["snapshot_id"],
            "alerts": alerts.get(r["event_id"], []),
        }
        for r in rows
    ]


def latest_field_performance(
    database: Engine | Connection, model: str | None = None, *, as_of: AsOf | None = None
) -> dict[tuple[str, int, str], dict]:
    """(model, version, environment) → its newest feedback report at the cut."""
    latest: dict[tuple[str, int, str], dict] = {}
    for report in field_performance(database, model, as_of=as_of):
        latest[(report["model"], report["version"], report["environment"])] = report
    return latest
