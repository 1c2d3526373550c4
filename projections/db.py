"""The projection database: opening it, creating and dropping the tables, the
writer's lock, metadata, and a canonical dump.

SQLite (the default) and PostgreSQL run the same SQLAlchemy Core code; engines,
error wrapping and the two dialect-specific inserts are :mod:`ledger.sql`'s, shared
with the consumers.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine

from ledger import sql
from ledger.errors import InputError
from projections import tables

DIALECTS = sql.DIALECTS

# Any constant: the key of the PostgreSQL advisory lock that lets one projector
# write the views at a time.
_WRITER_LOCK = 0x6C656467  # "ledg"


def open_db(url: str) -> Engine:
    """An engine on the projection database ``url`` (a SQLAlchemy URL); see
    :func:`ledger.sql.open_engine`."""
    return sql.open_engine(url, "projection database")


describe = sql.describe
insert_ignore = sql.insert_ignore
upsert = sql.upsert


def errors(what: str, engine: Engine | None = None):
    """Re-raise database errors as :class:`BackendError` naming what failed."""
    where = f" ({describe(engine)})" if engine is not None else ""
    return sql.errors(f"projection database error while {what}{where}")


LOAD_CACHE_KIB = 128 * 1024
"""SQLite's page cache during a load (the connection keeps it afterwards)."""

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
    with engine.execution_options(**{sql.WRITER: True, sql.SYNC: _SQLITE_SYNC[sync]}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITER_LOCK})")
            if sync == "load":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        elif sync == "load":
            # A load inserts into a dozen indexes keyed by text in no useful order:
            # with SQLite's default 2 MB page cache most inserts read a page back.
            conn.exec_driver_sql(f"PRAGMA cache_size=-{LOAD_CACHE_KIB}")
        yield conn


def settle(engine: Engine) -> None:
    """Make everything committed so far durable (after commits made with
    ``sync="load"``): on SQLite a checkpoint that syncs the log and the file."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return  # PostgreSQL flushes asynchronous commits on its own within a moment
    with errors("writing the views to disk", engine), engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and leave no large log behind for readers


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
