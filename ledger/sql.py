"""The SQL database that the projections and the consumers keep their tables in:
opening engines (SQLite by default, PostgreSQL), the writer's lock on SQLite,
turning database errors into :class:`~ledger.errors.BackendError`, the two
dialect-specific inserts, and how a time is stored. One module, so that both
packages open one file the same way (they may share it), report a database problem
in the same words and write times in the same form.

Every time column holds fixed-width ISO-8601 UTC text with microseconds
(``2026-03-03T10:00:00.000000Z``, :func:`iso`): the same bytes on SQLite and
PostgreSQL, readable in a plain SQL client, and text order is time order, so
``column <= :t`` compares instants. The projections write such text themselves; the
consumers, which do arithmetic on times (backoff, leases), declare their columns
:class:`Seconds` and keep Unix seconds in Python.

Not part of the pure core: it imports SQLAlchemy. The log backends do not use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from sqlalchemy import String, Table, TypeDecorator, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from ledger.errors import BackendError, InputError

DIALECTS = ("sqlite", "postgresql")

WRITER = "ledger_writer"
"""Execution option: on SQLite, a transaction with it takes the write lock when it
begins (``BEGIN IMMEDIATE``), so that two writers on one file queue instead of one
failing half-way with "database is locked" when both read first."""

SYNC = "ledger_sync"
"""Execution option for a SQLite writer: its ``synchronous`` setting (OFF, NORMAL,
FULL; NORMAL when not given) — see :func:`projections.db.writing`."""


def open_engine(url: str, what: str = "database") -> Engine:
    """An engine on ``url`` (a SQLAlchemy URL); ``what`` names the database in
    errors ("projection database", "consumer database").

    ``sqlite://`` (no path) is a private in-memory database, kept on one connection
    so that it lives as long as the engine."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"malformed database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in DIALECTS:
        raise InputError(f"{what} {backend!r} is not supported: use sqlite:/// or postgresql+psycopg://")
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed, what)
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        # A missing driver module surfaces as an ImportError when the engine is made.
        where = parsed.render_as_string(hide_password=True)
        raise BackendError(
            f"no database driver for {where} ({exc}); for PostgreSQL use postgresql+psycopg:// "
            "and install psycopg: pip install 'psycopg[binary]' (or the package's [postgres] extra)"
        ) from exc
    except (OSError, SQLAlchemyError) as exc:
        raise BackendError(f"cannot open the {what} {parsed.render_as_string(hide_password=True)}: {exc}") from exc


def _refuse_a_log(path: Path, what: str) -> None:
    """The embedded event log named as this database: the views' or a consumer's
    tables would be created inside the auditors' evidence. Refused before anything
    is written."""
    import sqlite3

    if not path.is_file():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not for this check to judge: opening it reports the problem
    ours = ("proj_", "reg_", "audit_", "lin_", "field_", "cons_")
    if "events" in tables and not any(t.startswith(ours) for t in tables):
        raise BackendError(f"{path} is the ledger's event log, not a {what} (check --db / LEDGER_DB)")


def _sqlite_engine(parsed, what: str) -> Engine:
    memory = parsed.database in (None, "", ":memory:")
    if memory:
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        _refuse_a_log(Path(parsed.database), what)
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Projections and consumers may share the file: wait for the other's write
        # lock rather than fail.
        engine = create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin,
        # so the reads of a batch are in the same transaction as its writes.
        dbapi_connection.isolation_level = None
        if not memory:
            # WAL lets queries read while a writer writes. NORMAL keeps every
            # commit atomic across a process crash; only an OS crash may lose the
            # last commits, which a restart re-applies from the stored position.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        options = conn.get_execution_options()
        writer = options.get(WRITER, False)
        if writer and not memory:
            # Per transaction: a connection of the pool may have served a load.
            conn.exec_driver_sql(f"PRAGMA synchronous={options.get(SYNC, 'NORMAL')}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def reason(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line: SQLAlchemy appends the statement, its
    parameters and a link, and psycopg a hint, too much for a one-line error."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def errors(message: str):
    """Re-raise database errors as :class:`BackendError`: ``message: reason``."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise BackendError(f"{message}: {reason(exc)}") from exc


def _insert(conn: Connection, table: Table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict]) -> None:
    """Insert ``rows``, leaving alone any row whose key is already there."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def upsert(conn: Connection, table: Table, rows: Sequence[dict], keys: Iterable[str]) -> None:
    """Insert ``rows``, or update the row with the same ``keys``."""
    if not rows:
        return
    keys = list(keys)
    stmt = _insert(conn, table)
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changed), list(rows))


# -- times ----------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LAST = datetime.max.replace(tzinfo=timezone.utc)
_LAST_SECONDS = (_LAST - _EPOCH).total_seconds()


@lru_cache(maxsize=4096)  # the events of one append share their recorded_at
def iso(moment: datetime) -> str:
    """``moment`` as every time column stores it."""
    if moment.tzinfo is None:
        raise InputError(f"time {moment!r} has no time zone")
    # isoformat, not strftime: strftime's %Y drops the leading zeros of a year
    # before 1000 on glibc, which would break "text order is time order".
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def iso_seconds(seconds: float) -> str:
    """Unix seconds as a stored time. Outside 1970..9999 (a backoff of ``inf``, a
    lease older than the epoch) the nearer end stands in: no time a consumer stores
    lies there, so comparisons with stored times come out the same."""
    if math.isnan(seconds):
        raise ValueError("a time of NaN seconds")
    if seconds <= 0:
        return iso(_EPOCH)
    if seconds >= _LAST_SECONDS - 1:
        return iso(_LAST)
    return iso(datetime.fromtimestamp(seconds, timezone.utc))


def seconds(stored: str) -> float:
    """A stored time as Unix seconds."""
    moment = datetime.fromisoformat(stored.removesuffix("Z")).replace(tzinfo=timezone.utc)
    return (moment - _EPOCH).total_seconds()


class Seconds(TypeDecorator):
    """A time column seen from Python as Unix seconds (a float), stored as
    :func:`iso` text like every other time. Comparisons with a float bind it the
    same way, so ``column <= now - lease`` compares in the database."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else iso_seconds(float(value))

    def process_result_value(self, value, dialect):
        return None if value is None else seconds(value)
