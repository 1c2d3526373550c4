"""Where consumers keep their state: log positions, effects and dead letters.

Everything lives in the projection database (SQLite by default, PostgreSQL in
production), in tables prefixed ``cons_``, so a consumer's progress never depends
on Kafka's consumer-group commit alone:

* ``cons_positions`` — per consumer and partition, the last log offset handled;
* ``cons_effects`` — one row per intended effect, ``UNIQUE(consumer, event_id,
  channel)``: a redelivered or replayed event finds its row already there and
  creates nothing. Its ``status`` is the delivery state machine
  (pending → sending → delivered | retrying → … → dead);
* ``cons_logs`` — per consumer, the identity of the log its positions belong to
  (:mod:`ledger.log_identity`), recorded with its first batch;
* ``cons_dead_letters`` — records that could not be decoded (with their position
  and bytes) and effects that failed for good (with the reason).

Times are stored as every time column is (:func:`ledger.sql.iso`: ISO-8601 UTC
text, the projections' form), through :class:`ledger.sql.Seconds`: this module and
its callers see Unix seconds (a float), which backoffs and leases add to. A
database made by the previous version, whose time columns were floats, is
converted in place when it is opened (:func:`_convert_float_times`).

All SQL of the consumers lives here.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    inspect,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    IntegrityError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from ledger import sql
from ledger.errors import BackendError, NotFound
from ledger.follow import PositionMoved
from ledger.sql import Seconds

metadata = MetaData()

positions = Table(
    "cons_positions",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, nullable=False),
    Column("updated_at", Seconds, nullable=False),
)

logs = Table(
    "cons_logs",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("identity", Text, nullable=False),
    Column("recorded_at", Seconds, nullable=False),
)

effects = Table(
    "cons_effects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("consumer", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Seconds, nullable=False),
    Column("claimed_at", Seconds),
    Column("last_error", Text),
    Column("outcome", Text),
    Column("created_at", Seconds, nullable=False),
    Column("updated_at", Seconds, nullable=False),
    Column("finished_at", Seconds),
    UniqueConstraint("consumer", "event_id", "channel", name="uq_cons_effects_event_channel"),
)

dead_letters = Table(
    "cons_dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer", String(64), nullable=False, index=True),
    # ``record`` (could not be decoded or handled) or ``effect`` (failed for good).
    Column("kind", String(16), nullable=False),
    # What a dead letter is about, so that replaying the log adds no second letter.
    Column("subject", String(128), nullable=False),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("event_id", String(64)),
    Column("effect_id", String(36)),
    Column("channel", String(128)),
    Column("reason", Text, nullable=False),
    Column("data", LargeBinary),
    Column("recorded_at", Seconds, nullable=False),
    UniqueConstraint("consumer", "subject", name="uq_cons_dead_letters"),
)

PENDING, SENDING, DELIVERED, RETRYING, DEAD = "pending", "sending", "delivered", "retrying", "dead"
STATUSES = (PENDING, SENDING, DELIVERED, RETRYING, DEAD)

_DELIVERY_NAMESPACE = uuid.UUID("0b6c1c1e-6f1b-4d0a-9a43-6c6564676572")


def effect_id(consumer: str, event_id: str, channel: str) -> str:
    """The stable id of an effect: the same for the same event and channel on every
    run and every database, so a receiver can de-duplicate on it even after the
    consumer's database was rebuilt."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{consumer}\x00{event_id}\x00{channel}"))


@dataclass(frozen=True, slots=True)
class Effect:
    """An effect as stored: what :meth:`consumers.runner.Consumer.perform` gets."""

    id: str
    consumer: str
    event_id: str
    channel: str
    event_type: str
    model: str
    version: int | None
    payload: dict
    status: str
    attempts: int
    """Attempts so far, counting the one being made."""
    partition: int
    offset: int
    last_error: str | None = None


def _effect(row) -> Effect:
    return Effect(
        id=row.id,
        consumer=row.consumer,
        event_id=row.event_id,
        channel=row.channel,
        event_type=row.event_type,
        model=row.model,
        version=row.version,
        payload=json.loads(row.payload),
        status=row.status,
        attempts=row.attempts,
        partition=row.partition,
        offset=row.offset,
        last_error=row.last_error,
    )


_DDL_LOCK = 0x6C65646765720001  # any constant the consumers agree on ("ledger" + 1)
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """An engine for ``url`` (one per process and URL) with the consumer tables
    created. The tables are checked on every call, not once per process: a test or
    an operator may have dropped them since."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _new_engine(url)
            _ENGINES[url] = engine
    _create_tables(engine)
    return engine


def _create_tables(engine: Engine) -> None:
    # Several consumer processes may start at once: on PostgreSQL they queue on an
    # advisory lock (DDL is transactional there); elsewhere the loser of the race
    # finds the tables on its next look.
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
                _convert_float_times(conn)
                metadata.create_all(conn)
            return
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            if attempt == 2 or "already exists" not in str(exc):
                raise BackendError(f"cannot open the consumer database {engine.url!r}: {sql.reason(exc)}") from exc
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot open the consumer database {engine.url!r}: {sql.reason(exc)}") from exc


def _convert_float_times(conn: Connection) -> None:
    """Within the caller's transaction: rewrite every consumer table whose time
    columns the previous version made floats of Unix seconds into the current form,
    rows unchanged but for the times' representation. The table is read, dropped,
    created anew and refilled (SQLite cannot change a column's type in place); a
    failure rolls it all back and leaves the old database as it was."""
    present = inspect(conn)
    for table in metadata.sorted_tables:
        if not present.has_table(table.name):
            continue
        found = {c["name"]: c["type"] for c in present.get_columns(table.name)}
        if not any(
            isinstance(column.type, Seconds) and isinstance(found.get(column.name), Float) for column in table.columns
        ):
            continue
        old = Table(table.name, MetaData(), autoload_with=conn)
        rows = [dict(r._mapping) for r in conn.execute(select(old))]
        old.drop(conn)
        table.create(conn)
        if rows:
            conn.execute(table.insert(), rows)  # Seconds writes the floats as text
        if conn.dialect.name == "postgresql":
            # The refilled rows kept their ids; the new table's id sequence must
            # start after them.
            for column in table.primary_key.columns:
                if column.autoincrement is True:
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'),"
                            f" COALESCE(MAX({column.name}), 0) + 1, false) FROM {table.name}"
                        )
                    )


def _new_engine(url: str) -> Engine:
    # Every transaction of a consumer writes (claims, positions, outcomes): each
    # takes SQLite's write lock as it begins. With a deferred BEGIN, two writers
    # that both read first deadlock on the upgrade and one fails at once with
    # "database is locked", whatever the busy timeout.
    return sql.open_engine(url, "consumer database").execution_options(**{sql.WRITER: True})


def dispose_engines() -> None:
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


class Store:
    """The consumer tables of one database, seen by one consumer."""

    def __init__(self, engine: Engine, consumer: str):
        self.engine = engine
        self.consumer = consumer

    # -- positions ------------------------------------------------------------

    def positions(self) -> dict[int, int]:
        with self._connect() as conn:
            rows = conn.execute(
                select(positions.c.partition, positions.c.offset).where(positions.c.consumer == self.consumer)
            )
            return {r.partition: r.offset for r in rows}

    def log_identity(self, conn: Connection | None = None) -> str | None:
        """The identity of the log this consumer's positions belong to, if recorded."""
        query = select(logs.c.identity).where(logs.c.consumer == self.consumer)
        if conn is not None:
            return conn.execute(query).scalar()
        with self._connect() as own:
            return own.execute(query).scalar()

    def record_log_identity(self, conn: Connection, identity: str, now: float) -> None:
        """Within the caller's transaction; a concurrent first record keeps the first."""
        sql.insert_ignore(conn, logs, [{"consumer": self.consumer, "identity": identity, "recorded_at": now}])

    def reset_positions(self) -> None:
        with self._begin() as conn:
            conn.execute(positions.delete().where(positions.c.consumer == self.consumer))

    def record_batch(
        self,
        conn: Connection,
        new_positions: dict[int, int],
        new_effects: Sequence[dict],
        new_dead_letters: Sequence[dict],
        now: float,
        expected: dict[int, int] | None = None,
    ) -> int:
        """Within the caller's transaction: the effects, dead letters and positions
        of a batch of records. Returns how many effects were new.

        With ``expected`` (a member of a consumer group: the positions the batch was
        read from), each position moves only from where the batch started — an
        update guarded by that offset, made first — and
        :class:`~ledger.follow.PositionMoved` is raised (the caller's transaction
        then rolls back, effects included) when another process moved it since."""
        if expected is not None:
            self._move_guarded(conn, new_positions, expected, now)
        before = self._count_effects(conn)
        sql.insert_ignore(conn, effects, [{**e, "consumer": self.consumer} for e in new_effects])
        sql.insert_ignore(conn, dead_letters, [{**d, "consumer": self.consumer} for d in new_dead_letters])
        for partition, offset in ({} if expected is not None else new_positions).items():
            moved = conn.execute(
                update(positions)
                .where(
                    positions.c.consumer == self.consumer,
                    positions.c.partition == partition,
                    positions.c.offset < offset,
                )
                .values(offset=offset, updated_at=now)
            ).rowcount
            if not moved:
                # Either the first position of this partition, or another process of
                # the same consumer is already further: never move a position back.
                sql.insert_ignore(
                    conn,
                    positions,
                    [{"consumer": self.consumer, "partition": partition, "offset": offset, "updated_at": now}],
                )
        return self._count_effects(conn) - before

    def _move_guarded(self, conn: Connection, new_positions: dict[int, int], expected: dict[int, int], now: float) -> None:
        for partition, offset in sorted(new_positions.items()):
            was = expected.get(partition, -1)
            if was >= 0:
                # On PostgreSQL a concurrent update of the same row waits for the
                # other transaction, then re-checks the offset against its result.
                moved = conn.execute(
                    update(positions)
                    .where(
                        positions.c.consumer == self.consumer,
                        positions.c.partition == partition,
                        positions.c.offset == was,
                    )
                    .values(offset=offset, updated_at=now)
                ).rowcount
            else:
                try:
                    conn.execute(
                        positions.insert().values(
                            consumer=self.consumer, partition=partition, offset=offset, updated_at=now
                        )
                    )
                    moved = 1  # (an INSERT's rowcount is not reliable on every driver)
                except IntegrityError:
                    moved = 0  # the row is there: another process started this partition
            if moved != 1:
                found = conn.execute(
                    select(positions.c.offset).where(
                        positions.c.consumer == self.consumer, positions.c.partition == partition
                    )
                ).scalar() if was >= 0 else None
                raise PositionMoved(
                    f"consumer {self.consumer!r}: partition {partition} is at offset "
                    f"{'another' if found is None else found}, not {was} where this batch was read from: "
                    "another process handled it"
                )

    def _count_effects(self, conn: Connection) -> int:
        return conn.execute(
            select(func.count()).select_from(effects).where(effects.c.consumer == self.consumer)
        ).scalar_one()

    # -- effects --------------------------------------------------------------

    def _due(self, now: float, lease: float):
        return and_(
            effects.c.consumer == self.consumer,
            or_(
                and_(effects.c.status.in_((PENDING, RETRYING)), effects.c.next_attempt_at <= now),
                # A 'sending' row whose lease ran out belongs to a process that died
                # between "sending" and the outcome: try again (at-least-once).
                and_(effects.c.status == SENDING, effects.c.claimed_at <= now - lease),
            ),
        )

    def due(self, now: float, lease: float, limit: int) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                select(effects.c.id)
                .where(self._due(now, lease))
                .order_by(effects.c.next_attempt_at, effects.c.partition, effects.c.offset, effects.c.channel)
                .limit(limit)
            )
            return [r.id for r in rows]

    def next_due_at(self, lease: float) -> float | None:
        """When the earliest unfinished effect becomes due, or None if none is left."""
        with self._connect() as conn:
            waiting = conn.execute(
                select(func.min(effects.c.next_attempt_at)).where(
                    effects.c.consumer == self.consumer, effects.c.status.in_((PENDING, RETRYING))
                )
            ).scalar_one()
            sending = conn.execute(
                select(func.min(effects.c.claimed_at)).where(
                    effects.c.consumer == self.consumer, effects.c.status == SENDING
                )
            ).scalar_one()
        candidates = [t for t in (waiting, None if sending is None else sending + lease) if t is not None]
        return min(candidates) if candidates else None

    def claim(self, effect_id_: str, now: float, lease: float) -> Effect | None:
        """Mark an effect 'sending' (one more attempt) if it is still due; None if
        another process took it or it is no longer due."""
        with self._begin() as conn:
            claimed = conn.execute(
                update(effects)
                .where(effects.c.id == effect_id_, self._due(now, lease))
                .values(status=SENDING, attempts=effects.c.attempts + 1, claimed_at=now, updated_at=now)
            ).rowcount
            if not claimed:
                return None
            row = conn.execute(select(effects).where(effects.c.id == effect_id_)).one()
            return _effect(row)

    def delivered(self, effect: Effect, outcome: str | None, now: float) -> None:
        with self._begin() as conn:
            conn.execute(
                update(effects)
                .where(effects.c.id == effect.id)
                .values(status=DELIVERED, outcome=outcome, finished_at=now, updated_at=now, claimed_at=None)
            )

    def retrying(self, effect: Effect, error: str, next_attempt_at: float, now: float) -> None:
        with self._begin() as conn:
            conn.execute(
                update(effects)
                .where(effects.c.id == effect.id)
                .values(
                    status=RETRYING,
                    last_error=error,
                    next_attempt_at=next_attempt_at,
                    updated_at=now,
                    claimed_at=None,
                )
            )

    def dead(self, effect: Effect, reason: str, now: float) -> None:
        with self._begin() as conn:
            conn.execute(
                update(effects)
                .where(effects.c.id == effect.id)
                .values(status=DEAD, last_error=reason, finished_at=now, updated_at=now, claimed_at=None)
            )
            sql.insert_ignore(
                conn,
                dead_letters,
                [
                    {
                        "consumer": self.consumer,
                        "kind": "effect",
                        "subject": f"effect:{effect.id}",
                        "partition": effect.partition,
                        "offset": effect.offset,
                        "event_id": effect.event_id,
                        "effect_id": effect.id,
                        "channel": effect.channel,
                        "reason": reason,
                        "data": None,
                        "recorded_at": now,
                    }
                ],
            )

    # -- listings -------------------------------------------------------------

    def list_effects(self, status: str | None = None, model: str | None = None) -> list[dict]:
        query = select(effects).where(effects.c.consumer == self.consumer)
        if status is not None:
            query = query.where(effects.c.status == status)
        if model is not None:
            query = query.where(effects.c.model == model)
        query = query.order_by(effects.c.partition, effects.c.offset, effects.c.channel)
        with self._connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        query = (
            select(effects.c.status, func.count())
            .where(effects.c.consumer == self.consumer)
            .group_by(effects.c.status)
        )
        with self._connect() as conn:
            return {status: n for status, n in conn.execute(query)}

    def list_dead_letters(self) -> list[dict]:
        query = (
            select(dead_letters)
            .where(dead_letters.c.consumer == self.consumer)
            .order_by(dead_letters.c.recorded_at, dead_letters.c.id)
        )
        with self._connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def get_effect(self, effect_id_: str) -> Effect:
        with self._connect() as conn:
            row = conn.execute(select(effects).where(effects.c.id == effect_id_)).one_or_none()
        if row is None:
            raise NotFound(f"no effect {effect_id_!r}")
        return _effect(row)

    # -- plumbing -------------------------------------------------------------

    def _connect(self):
        return _Wrapped(self.engine, begin=False)

    def _begin(self):
        return _Wrapped(self.engine, begin=True)

    def begin(self):
        """A transaction for :meth:`record_batch`."""
        return self._begin()


class _Wrapped:
    """A connection or transaction whose database errors become BackendError."""

    def __init__(self, engine: Engine, begin: bool):
        self.engine = engine
        self.begin = begin
        self._cm = None

    def __enter__(self) -> Connection:
        try:
            self._cm = self.engine.begin() if self.begin else self.engine.connect()
            return self._cm.__enter__()
        except SQLAlchemyError as exc:
            raise BackendError(f"consumer database unavailable: {sql.reason(exc)}") from exc

    def __exit__(self, exc_type, exc, tb):
        try:
            result = self._cm.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as error:
            raise BackendError(f"consumer database write failed: {sql.reason(error)}") from error
        if isinstance(exc, SQLAlchemyError):
            raise BackendError(f"consumer database error: {sql.reason(exc)}") from exc
        return result
