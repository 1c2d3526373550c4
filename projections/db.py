"""The projection database: opening it, creating and dropping the tables, the two
dialect-specific statements the folds need, and a canonical dump.

SQLite (the default) and PostgreSQL run the same SQLAlchemy Core code; only
"insert unless present", "insert or update" and the writer lock differ by dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Table, create_engine, delete, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from ledger.errors import BackendError, InputError
from projections import tables

DIALECTS = ("sqlite", "postgresql")

# Any constant: the key of the PostgreSQL advisory lock that lets one projector
# write the views at a time.
_WRITER_LOCK = 0x6C656467  # "ledg"


def open_db(url: str) -> Engine:
    """An engine on the projection database ``url`` (a SQLAlchemy URL).

    ``sqlite://`` (no path) is a private in-memory database, kept on one connection
    so that it lives as long as the engine."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"malformed database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in DIALECTS:
        raise InputError(f"projection database {backend!r} is not supported: use sqlite:/// or postgresql+psycopg://")
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        # A missing driver module surfaces as an ImportError when the engine is made.
        where = parsed.render_as_string(hide_password=True)
        raise BackendError(
            f"no database driver for {where} ({exc}); for PostgreSQL use postgresql+psycopg:// "
            "and install psycopg: pip install 'psycopg[binary]' (or the package's [postgres] extra)"
        ) from exc
    except (OSError, SQLAlchemyError) as exc:
        raise BackendError(f"cannot open the projection database {parsed.render_as_string(hide_password=True)}: {exc}") from exc


def _sqlite_engine(parsed) -> Engine:
    memory = parsed.database in (None, "", ":memory:")
    if memory:
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin,
        # so the reads of a batch are in the same transaction as its writes.
        dbapi_connection.isolation_level = None
        if not memory:
            # WAL lets queries read while the projector writes. NORMAL keeps every
            # commit atomic across a process crash; only an OS crash may lose the
            # last commits, which a restart re-applies from the stored position.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # A writer takes SQLite's write lock up front, so that two projectors on
        # one file serialise instead of failing half-way through a batch.
        options = conn.get_execution_options()
        writer = options.get("projection_writer", False)
        if writer and not memory:
            conn.exec_driver_sql(f"PRAGMA synchronous={_SQLITE_SYNC[options.get('projection_sync', 'normal')]}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def errors(what: str, engine: Engine | None = None):
    """Re-raise database errors as :class:`BackendError` naming what failed."""
    try:
        yield
    except SQLAlchemyError as exc:
        where = f" ({describe(engine)})" if engine is not None else ""
        # The driver's own message, first line: SQLAlchemy's adds the statement and
        # its parameters, which is not for the command line.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        raise BackendError(f"projection database error while {what}{where}: {reason[0]}") from exc


_SQLITE_SYNC = {"load": "OFF", "normal": "NORMAL", "durable": "FULL"}


@contextmanager
def writing(engine: Engine, sync: str = "normal"):
    """A write transaction, holding the projector's lock until it ends.

    ``sync="load"`` is for a bulk load (a rebuild): the commit does not wait for the
    disk (SQLite ``synchronous=OFF``, PostgreSQL ``synchronous_commit=off``). A
    process crash loses nothing either way; after an OS crash PostgreSQL only loses
    the last commits, while SQLite's file may be damaged — which is why a load is
    marked in the database first (:class:`projections.runner.Runner`) and
    :func:`settle` makes it durable at the end. ``"durable"`` waits for the disk."""
    with engine.execution_options(projection_writer=True, projection_sync=sync).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITER_LOCK})")
            if sync == "load":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        yield conn


def settle(engine: Engine) -> None:
    """Make everything committed so far durable (after commits made with
    ``sync="load"``): on SQLite a checkpoint that syncs the log and the file."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return  # PostgreSQL flushes asynchronous commits on its own within a moment
    with errors("writing the views to disk", engine), engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("PRAGMA wal_checkpoint(FULL)")


def damage(engine: Engine) -> str | None:
    """What SQLite's own check finds wrong with the file (None when sound, and on
    PostgreSQL, which never leaves a damaged database after a crash)."""
    if engine.dialect.name != "sqlite":
        return None
    with errors("checking the views' database file", engine), engine.connect() as conn:
        found = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check")]
    if found == ["ok"]:
        return None
    problems = [line for text in found for line in str(text).splitlines() if line.strip()]
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    return f"{problems[0].strip()}{more}"


def create(engine: Engine) -> None:
    """Create the tables that are missing and record the schema version; refuse a
    database whose projection tables come from another version of this code."""
    with errors("creating the projection tables", engine), writing(engine) as conn:
        tables.metadata.create_all(conn)
        found = conn.execute(select(tables.meta.c.value).where(tables.meta.c.key == "schema")).scalar()
        if found is None:
            conn.execute(tables.meta.insert().values(key="schema", value=tables.SCHEMA_VERSION))
        elif found != tables.SCHEMA_VERSION:
            raise InputError(
                f"the projection tables in {describe(engine)} are of schema {found}, this ledger "
                f"writes schema {tables.SCHEMA_VERSION}: run `ledger project --rebuild`"
            )


def drop(engine: Engine) -> None:
    """Drop every projection table (and only those: other tables in the same
    database are left alone)."""
    with errors("dropping the projection tables", engine), writing(engine) as conn:
        tables.metadata.drop_all(conn)


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(tables.meta.c.value).where(tables.meta.c.key == key)).scalar()


def set_meta(conn: Connection, key: str, value: str | None) -> None:
    conn.execute(delete(tables.meta).where(tables.meta.c.key == key))
    if value is not None:
        conn.execute(tables.meta.insert().values(key=key, value=value))


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


def dump(engine: Engine) -> str:
    """Every projection table's rows as JSON lines, in a canonical order: two
    databases hold the same views exactly when their dumps are equal."""
    lines: list[str] = []
    with errors("dumping the views", engine), engine.connect() as conn:
        for table in tables.ALL:
            rows = [tuple(r) for r in conn.execute(select(table))]
            # Sorted here rather than by ORDER BY: text collation differs between
            # databases, Python's order does not.
            rows.sort(key=lambda row: [(value is not None, value) for value in row])
            lines.append(json.dumps({"table": table.name, "columns": [c.name for c in table.columns]}))
            lines.extend(json.dumps(list(row)) for row in rows)
    return "\n".join(lines) + "\n"
