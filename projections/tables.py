"""The projection tables (SQLAlchemy Core), the same for SQLite and PostgreSQL.

Every name is prefixed so other parts of the system can keep their own tables in
the same database: ``proj_`` for the runner's bookkeeping, ``reg_`` for the registry,
``lin_`` for the lineage graph, ``audit_`` for the audit trail.

Keys are natural (model, version, log position, event id), never autoincrement
counters: the rows a fold writes must not depend on the order in which events of
different partitions happened to be applied, so that a rebuild gives the very same
rows as the incremental run.

Times are fixed-width ISO-8601 UTC text (see :mod:`projections.asof`). JSON values
are stored as text with sorted keys. ``partition``/``offset`` always mean the log
position of the event that wrote the row; ``*_offset`` columns with another prefix
are positions in the same partition (a model's stream never leaves its partition).

Rows that change over time keep their history as validity intervals
(``valid_from``/``valid_to`` times and ``from_offset``/``to_offset`` positions):
that is what lets queries answer "as of" any instant or position.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    TypeDecorator,
)
from sqlalchemy import String as _String
from sqlalchemy import Text as _Text

SCHEMA_VERSION = "3"
"""2: ``*_canonical`` columns beside declared actor names (issue 9). 3: the audit's
``recorded_by`` (event schema v4: the principal that recorded an event on the
actor's behalf); a database of schema 2 is refused until ``ledger project --rebuild``."""

NUL_REPLACEMENT = "\ufffd"


class _NulFree(TypeDecorator):
    """Text that never holds a NUL: PostgreSQL refuses one in text, and an accepted
    event's free text (a reason, an actor) may contain one. It is written as U+FFFD on
    every database, so SQLite and PostgreSQL hold the same rows; the log keeps the
    exact bytes. Same DDL as the plain type."""

    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, str) and "\x00" in value:
            return value.replace("\x00", NUL_REPLACEMENT)
        return value


class String(_NulFree):
    impl = _String
    cache_ok = True


class Text(_NulFree):
    impl = _Text
    cache_ok = True


metadata = MetaData()

TS = String(32)
"""A time as :func:`projections.asof.iso` writes it."""


def _position() -> list[Column]:
    return [
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
    ]


# --- the runner's bookkeeping ----------------------------------------------------

positions = Table(
    "proj_positions",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, nullable=False),
)
"""Per projection and partition, the offset of the last record applied. Written in
the same transaction as the rows that record produced."""

streams = Table(
    "proj_streams",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("model", Text, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
"""Per projection and model stream, the last event applied: how the runner tells a
chained event from a broken link or a replayed one."""

meta = Table(
    "proj_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""``schema`` (the version of these tables) and ``as_of`` (set when the views were
built as of an instant: such a database cannot be brought forward incrementally)."""

quarantine = Table(
    "proj_quarantine",
    metadata,
    *_position(),
    Column("model", Text),
    Column("reason", Text, nullable=False),
    Column("raw_length", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("fingerprint", String(16)),
    Column("event_type", Text),
    Column("appended_at", TS),
    PrimaryKeyConstraint("partition", "offset", name="pk_proj_quarantine"),
)
"""Records that could not be read as events (bad bytes, unknown schema fingerprint,
a key that disagrees with the event): kept here, never skipped silently."""

# --- registry ----------------------------------------------------------------------

reg_models = Table(
    "reg_models",
    metadata,
    Column("model", Text, primary_key=True),
    Column("created_at", TS, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("created_offset", BigInteger, nullable=False),
    Column("retired_at", TS),
    Column("retired_offset", BigInteger),
    Column("retired_by", Text),
    Column("retire_reason", Text),
)

reg_versions = Table(
    "reg_versions",
    metadata,
    Column("model", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("trained_at", TS, nullable=False),
    Column("trained_by", Text, nullable=False),
    Column("trained_by_canonical", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("trained_offset", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("code_ref", Text, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("artifact_hash", Text, nullable=False),
    Column("parent_version", Integer),
    Column("trigger", String(16), nullable=False),
    Column("trigger_alert_id", Text),
    Column("snapshot_ids", Text, nullable=False),
    Column("hyperparameters", Text, nullable=False),
)
"""What a training produced: facts that never change."""

reg_version_states = Table(
    "reg_version_states",
    metadata,
    Column("model", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("from_offset", BigInteger, primary_key=True, autoincrement=False),
    Column("to_offset", BigInteger),
    Column("valid_from", TS, nullable=False),
    Column("valid_to", TS),
    Column("status", String(16), nullable=False),
    Column("evaluations", Integer, nullable=False),
    Column("last_evaluation_passed", Boolean),
    Column("approved_by", Text),
    Column("approved_at", TS),
    Column("rejected_by", Text),
    Column("rejected_at", TS),
    Column("decision_reason", Text),
    Column("deployed_in", Text, nullable=False),
    Column("retired_by", Text),
    Column("retired_at", TS),
    Column("retire_reason", Text),
    Column("changed_by", Text, nullable=False),
    Column("change", String(32), nullable=False),
)
"""A version's mutable state, one row per change; the open row (``to_offset`` NULL)
is the current one. ``status`` is trained, evaluated, approved, rejected, deployed
(approved and deployed in at least one environment) or retired."""
Index("ix_reg_version_states_open", reg_version_states.c.model, reg_version_states.c.version, reg_version_states.c.to_offset)

reg_evaluations = Table(
    "reg_evaluations",
    metadata,
    Column("model", Text, nullable=False),
    Column("version", Integer, nullable=False),
    *_position(),
    Column("event_id", String(36), nullable=False),
    Column("evaluated_at", TS, nullable=False),
    Column("evaluated_by", Text, nullable=False),
    Column("evaluation_snapshot_id", Text, nullable=False),
    Column("passed", Boolean, nullable=False),
    PrimaryKeyConstraint("partition", "offset", name="pk_reg_evaluations"),
)
Index("ix_reg_evaluations_version", reg_evaluations.c.model, reg_evaluations.c.version)

reg_metrics = Table(
    "reg_metrics",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("metric", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("value", Double),
    Column("threshold", Double),
)
"""One row per metric of an evaluation (keyed by the evaluation's position)."""
Index("ix_reg_metrics_version", reg_metrics.c.model, reg_metrics.c.version)

reg_deployments = Table(
    "reg_deployments",
    metadata,
    Column("model", Text, nullable=False),
    Column("environment", Text, nullable=False),
    *_position(),
    Column("version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("deployed_at", TS, nullable=False),
    Column("deployed_by", Text, nullable=False),
    Column("replaced_version", Integer),
    Column("ended_at", TS),
    Column("ended_offset", BigInteger),
    Column("ended_by", Text),
    Column("end_reason", Text),
    PrimaryKeyConstraint("partition", "offset", "environment", name="pk_reg_deployments"),
)
"""Each deployment is an interval: from its event until a later deployment to the
same environment, or a retirement, ends it (``ended_*``)."""
Index("ix_reg_deployments_env", reg_deployments.c.model, reg_deployments.c.environment, reg_deployments.c.ended_offset)

# --- field performance (registry) ------------------------------------------------

field_feedback = Table(
    "field_feedback",
    metadata,
    Column("model", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("environment", Text, nullable=False),
    *_position(),
    Column("event_id", String(36), nullable=False),
    Column("recorded_at", TS, nullable=False),
    Column("reported_by", Text, nullable=False),
    Column("window_start", TS, nullable=False),
    Column("window_end", TS, nullable=False),
    Column("predictions", BigInteger, nullable=False),
    Column("alarms", BigInteger, nullable=False),
    Column("confirmed", BigInteger, nullable=False),
    Column("unlabelled", BigInteger, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("snapshot_id", Text, nullable=False),
    PrimaryKeyConstraint("partition", "offset", name="pk_field_feedback"),
)
"""One row per ``FeedbackRecorded``: a version's outcomes in one environment over
a window (``metrics`` is JSON). The latest row per version and environment is its
field performance, shown beside its offline evaluation."""
Index("ix_field_feedback_version", field_feedback.c.model, field_feedback.c.version, field_feedback.c.environment)

field_alerts = Table(
    "field_alerts",
    metadata,
    Column("model", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("environment", Text, nullable=False),
    *_position(),
    Column("event_id", String(36), nullable=False),
    Column("recorded_at", TS, nullable=False),
    Column("reported_by", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Double, nullable=False),
    Column("threshold", Double, nullable=False),
    Column("bound", String(16), nullable=False),
    Column("threshold_source", String(32), nullable=False),
    Column("feedback_event_id", String(64), nullable=False),
    PrimaryKeyConstraint("partition", "offset", name="pk_field_alerts"),
)
"""One row per ``PerformanceDegraded``."""
Index("ix_field_alerts_feedback", field_alerts.c.feedback_event_id)

# --- lineage -----------------------------------------------------------------------

lin_nodes = Table(
    "lin_nodes",
    metadata,
    Column("node_id", Text, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("model", Text),
    Column("version", Integer),
    Column("environment", Text),
    Column("label", Text, nullable=False),
    Column("attrs", Text, nullable=False),
    Column("recorded_at", TS),
    Column("partition", Integer),
    Column("offset", BigInteger),
)
"""Typed nodes: dataset, snapshot, training_run, model_version, evaluation,
approval, deployment, drift_alert. A dataset node is shared by every model that
snapshots it and carries no time of its own (it exists through its edges)."""
Index("ix_lin_nodes_model", lin_nodes.c.model, lin_nodes.c.version, lin_nodes.c.kind)

lin_edges = Table(
    "lin_edges",
    metadata,
    Column("src", Text, primary_key=True),
    Column("dst", Text, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("model", Text, nullable=False),
    Column("recorded_at", TS, nullable=False),
    *_position(),
)
"""Typed edges, pointing downstream (from cause to effect)."""
Index("ix_lin_edges_dst", lin_edges.c.dst)

# --- audit -------------------------------------------------------------------------

audit_events = Table(
    "audit_events",
    metadata,
    *_position(),
    Column("recorded_at", TS),
    Column("occurred_at", TS),
    Column("actor", Text),
    Column("actor_canonical", Text),
    Column("recorded_by", Text),
    Column("recorded_by_canonical", Text),
    Column("event_type", String(64), nullable=False),
    Column("model", Text),
    Column("version", Integer),
    Column("sequence", BigInteger),
    Column("event_id", String(36)),
    Column("summary", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("prev_hash", String(64)),
    Column("chain", String(16), nullable=False),
    PrimaryKeyConstraint("partition", "offset", name="pk_audit_events"),
)
"""One row per log record, readable or not. ``chain`` is ``ok`` when the event's
``prev_hash`` is the hash of the previous event of its model the projector saw (and
its bytes match the hash the backend recorded at append time), ``broken``
otherwise, ``unverifiable`` for an unreadable record."""
Index("ix_audit_events_model", audit_events.c.model, audit_events.c.recorded_at)
Index("ix_audit_events_actor", audit_events.c.actor_canonical, audit_events.c.recorded_at)
Index("ix_audit_events_type", audit_events.c.event_type, audit_events.c.recorded_at)
Index("ix_audit_events_time", audit_events.c.recorded_at)

ALL = tuple(metadata.sorted_tables)
