"""Bulk writes of the folds, one path per dialect, at close to the database's own rate.

SQLAlchemy Core's ``conn.execute(table.insert(), rows)`` builds and processes the
parameters of every row in Python (a bind processor per value): measured on the
projection benchmark, that was a quarter of the whole fold. The rows a fold writes
are plain values already (text, integers, floats, booleans, None), so here each
statement is compiled once per table and dialect and the rows go to the driver as
tuples:

* SQLite: one prepared statement, ``executemany``;
* PostgreSQL: ``COPY … FROM STDIN`` (psycopg) for plain inserts, multi-row
  ``INSERT … VALUES (…), (…) ON CONFLICT …`` for "insert unless present" and upserts.

Everything runs on the connection of the batch's transaction, so the rows and the
positions still commit or roll back together. The one conversion the tables' types
did per value — a NUL in text is stored as U+FFFD (:class:`projections.tables.String`)
— is done here too, found by one scan of a batch's text columns rather than a call per value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import chain
from operator import itemgetter

from sqlalchemy import Boolean, Float, Integer, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from projections.tables import NUL_REPLACEMENT

_NOT_TEXT = (Integer, Float, Boolean)

PG_MAX_PARAMETERS = 30_000
"""Parameters per multi-row statement on PostgreSQL (the protocol allows 65,535)."""


def _clean(value):
    return value.replace("\x00", NUL_REPLACEMENT) if isinstance(value, str) and "\x00" in value else value


def _tuples(table: Table, columns: Sequence[str], rows: Iterable[dict]) -> list[tuple]:
    get = itemgetter(*columns)
    values = [get(r) for r in rows] if len(columns) > 1 else [(get(r),) for r in rows]
    if values and _has_nul(values, _text_positions(table, tuple(columns))):
        values = [tuple(_clean(v) for v in row) for row in values]
    return values


@lru_cache(maxsize=256)
def _text_positions(table: Table, columns: tuple[str, ...]) -> tuple[int, ...]:
    """Where in a row the columns that may hold text are (all but numbers and booleans)."""
    return tuple(i for i, c in enumerate(columns) if not isinstance(table.c[c].type, _NOT_TEXT))


def _has_nul(values: list[tuple], positions: tuple[int, ...]) -> bool:
    """Whether a text value of ``values`` holds a NUL: the text columns of every row
    chained, the Nones dropped, joined and searched, every loop in C (a third
    cheaper than a Python test per value, measured on the benchmark's rows)."""
    if not positions:
        return False
    if len(positions) == 1:
        texts = map(itemgetter(positions[0]), values)
    else:
        texts = chain.from_iterable(map(itemgetter(*positions), values))
    try:
        return "\x00" in "".join(filter(None, texts))
    except TypeError:  # not only text in those columns: value by value
        return any(isinstance(v, str) and "\x00" in v for row in values for v in row)


@lru_cache(maxsize=256)
def _quoted(dialect_name: str, preparer, table: Table, columns: tuple[str, ...]) -> tuple[str, str]:
    return preparer.format_table(table), ", ".join(preparer.quote(c) for c in columns)


def _names(conn: Connection, table: Table, columns: tuple[str, ...]) -> tuple[str, str]:
    return _quoted(conn.dialect.name, conn.dialect.identifier_preparer, table, columns)


def _columns(table: Table, rows: Sequence[dict]) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name in rows[0])


def _conflict(conn: Connection, keys: Sequence[str] | None, update: Sequence[str]) -> str:
    if keys is None:
        return " ON CONFLICT DO NOTHING"
    q = conn.dialect.identifier_preparer.quote
    target = ", ".join(q(k) for k in keys)
    sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in update)
    return f" ON CONFLICT ({target}) DO UPDATE SET {sets}"


def _multi_row(conn: Connection, head: str, tail: str, width: int, values: list[tuple]) -> None:
    """PostgreSQL: ``head VALUES (…), (…) tail`` in as few statements as the
    parameter limit allows."""
    per = max(1, PG_MAX_PARAMETERS // width)
    for start in range(0, len(values), per):
        chunk = values[start : start + per]
        _execute_native(conn, f"{head} VALUES {_native_rows(len(chunk), ('',) * width)}{tail}", chunk)


@lru_cache(maxsize=128)
def _native_rows(rows: int, casts: tuple[str, ...]) -> str:
    """``($1, $2), ($3, $4), …``: ``rows`` rows of ``len(casts)`` values in
    PostgreSQL's own placeholders, each value followed by its cast ("" for none).
    Full chunks of a batch are the same text, built once."""
    width = len(casts)
    return ", ".join(
        "(" + ", ".join(f"${r * width + j + 1}{casts[j]}" for j in range(width)) + ")" for r in range(rows)
    )


def _execute_native(conn: Connection, statement: str, chunk: list[tuple]) -> None:
    """Run a statement written with ``$n`` placeholders through psycopg's raw cursor,
    on the connection of the batch's transaction. psycopg's ordinary cursor parses
    ``%s`` placeholders with a regular expression, uncached for a statement this
    long: in a profile of a PostgreSQL rebuild that parsing was 6 million regex
    matches, over half the benchmark process's CPU."""
    params = [v for row in chunk for v in row]
    dbapi = conn.dialect.loaded_dbapi
    raw_cursor = getattr(dbapi, "RawCursor", None)
    if raw_cursor is None:  # psycopg before 3.2: its own conversion of %s
        conn.exec_driver_sql(re.sub(r"\$\d+", "%s", statement), tuple(params))
        return
    try:
        with raw_cursor(conn.connection.dbapi_connection) as cursor:
            cursor.execute(statement, params)
    except dbapi.Error as exc:
        # The projections' error handling (db.errors) speaks SQLAlchemy's family.
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def _write(conn: Connection, table: Table, rows: Sequence[dict], keys: Sequence[str] | None, ignore: bool) -> None:
    if not rows:
        return
    columns = _columns(table, rows)
    values = _tuples(table, columns, rows)
    tail = ""
    if keys is not None or ignore:
        tail = _conflict(conn, keys, [c for c in columns if keys is None or c not in keys])
    _send(conn, table, columns, values, tail)


def insert_values(conn: Connection, table: Table, columns: Sequence[str], values: list[tuple]) -> None:
    """Insert ``values`` (tuples in the order of ``columns``) as they are: the
    database's own bulk path with nothing done in Python per row — what
    ``bench/project.py`` measures the folds' writes against."""
    if values:
        _send(conn, table, tuple(columns), values, "")


def _send(conn: Connection, table: Table, columns: tuple[str, ...], values: list[tuple], tail: str) -> None:
    name, cols = _names(conn, table, columns)
    if conn.dialect.name == "postgresql":
        if tail:
            _multi_row(conn, f"INSERT INTO {name} ({cols})", tail, len(columns), values)
        else:
            _copy(conn, f"COPY {name} ({cols}) FROM STDIN", values)
        return
    marks = ", ".join(["?"] * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {name} ({cols}) VALUES ({marks}){tail}", values)


def _copy(conn: Connection, statement: str, values: list[tuple]) -> None:
    raw = conn.connection.dbapi_connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except dbapi.Error as exc:
        # The projections' error handling (db.errors) speaks SQLAlchemy's family.
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def insert(conn: Connection, table: Table, rows: Sequence[dict]) -> None:
    """Insert ``rows`` (dicts with the same keys, table columns; other keys ignored)."""
    _write(conn, table, rows, None, ignore=False)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict]) -> None:
    """Insert ``rows``, leaving alone any row whose key is already there."""
    _write(conn, table, rows, None, ignore=True)


def upsert(conn: Connection, table: Table, rows: Sequence[dict], keys: Sequence[str]) -> None:
    """Insert ``rows`` or update the row with the same ``keys`` (unique in ``rows``)."""
    _write(conn, table, rows, tuple(keys), ignore=False)


def update(conn: Connection, table: Table, rows: Sequence[dict], *, keys: Sequence[str], columns: Sequence[str]) -> None:
    """``UPDATE table SET columns WHERE keys`` once per row (each row a dict holding
    both); a key matching no row changes nothing."""
    if not rows:
        return
    keys, columns = tuple(keys), tuple(columns)
    q = conn.dialect.identifier_preparer.quote
    name = conn.dialect.identifier_preparer.format_table(table)
    values = _tuples(table, columns + keys, rows)
    if conn.dialect.name == "postgresql":
        # One statement for the batch: UPDATE … FROM (VALUES …) joined on the keys.
        # The VALUES list carries no types; each column is cast to the table's.
        width = len(columns) + len(keys)
        casts = tuple(f"::{table.c[c].type.compile(conn.dialect)}" for c in columns + keys)
        alias = ", ".join(q(f"v_{c}") for c in columns + keys)
        sets = ", ".join(f"{q(c)} = v.{q(f'v_{c}')}" for c in columns)
        where = " AND ".join(f"{name}.{q(k)} = v.{q(f'v_{k}')}" for k in keys)
        per = max(1, PG_MAX_PARAMETERS // width)
        for start in range(0, len(values), per):
            chunk = values[start : start + per]
            sql = f"UPDATE {name} SET {sets} FROM (VALUES {_native_rows(len(chunk), casts)}) AS v ({alias}) WHERE {where}"
            _execute_native(conn, sql, chunk)
        return
    sets = ", ".join(f"{q(c)} = ?" for c in columns)
    where = " AND ".join(f"{q(k)} = ?" for k in keys)
    conn.exec_driver_sql(f"UPDATE {name} SET {sets} WHERE {where}", values)
