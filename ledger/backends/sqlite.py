"""The embedded log: one SQLite file, append-only, holding the same Avro bytes
that go to Kafka. The default when no broker is configured.

Writers serialise on SQLite's write lock (``BEGIN IMMEDIATE``), so the plan of an
append always sees the stream as it is when the append commits, across threads and
processes; ``UNIQUE(model, sequence)`` is the backstop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from ledger.errors import BackendError, ConflictError, RuleViolation
from ledger.log import EventLog, PlanFn, Position, RoundPlanFn, StoredRecord, StreamHead, StreamView
from ledger.rule_snapshots import Snapshot

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    model        TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    event_id     TEXT    NOT NULL UNIQUE,
    event_type   TEXT    NOT NULL,
    fingerprint  BLOB    NOT NULL,
    data         BLOB    NOT NULL,
    hash         TEXT    NOT NULL,
    appended_ms  INTEGER NOT NULL,
    UNIQUE (model, sequence)
);
CREATE TABLE IF NOT EXISTS rule_snapshots (
    model     TEXT    PRIMARY KEY,
    sequence  INTEGER NOT NULL,
    hash      TEXT    NOT NULL,
    state     BLOB    NOT NULL
);
"""
"""``rule_snapshots``: per model stream, the rule state after one of its events, bound
to that event's hash (:mod:`ledger.rule_snapshots`); written in the transaction of
an append, never read by ``verify``."""

_COLUMNS = "position, model, sequence, event_type, fingerprint, data, appended_ms, hash"


def _record(row) -> StoredRecord:
    position, model, sequence, event_type, fingerprint, data, appended_ms, hash_ = row
    return StoredRecord(
        position=Position(0, position),
        model=model,
        sequence=sequence,
        event_type=event_type,
        fingerprint=bytes(fingerprint),
        data=bytes(data),
        timestamp_ms=appended_ms,
        recorded_hash=hash_,
    )


_UNREAD = object()


class _View(StreamView):
    """One stream inside one append, under the write lock: what it reads cannot
    change until the append commits, so the head is read at most once."""

    def __init__(self, conn: sqlite3.Connection, model: str):
        self.conn = conn
        self.model = model
        self.kept: Snapshot | None = None
        self._head = _UNREAD

    def snapshot(self) -> Snapshot | None:
        row = self.conn.execute(
            "SELECT sequence, hash, state FROM rule_snapshots WHERE model = ?", (self.model,)
        ).fetchone()
        return Snapshot(row[0], row[1], bytes(row[2])) if row else None

    def keep(self, snapshot: Snapshot) -> None:
        self.kept = snapshot

    def head(self) -> StreamHead | None:
        if self._head is _UNREAD:
            row = self.conn.execute(
                "SELECT sequence, hash FROM events WHERE model = ? ORDER BY sequence DESC LIMIT 1",
                (self.model,),
            ).fetchone()
            self._head = StreamHead(row[0], row[1]) if row else None
        return self._head

    def records_after(self, sequence: int) -> Iterator[StoredRecord]:
        cursor = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE model = ? AND sequence > ? ORDER BY sequence",
            (self.model, sequence),
        )
        for row in cursor:
            yield _record(row)

    def find(self, event_id: str) -> StoredRecord | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE model = ? AND event_id = ?",
            (self.model, event_id),
        ).fetchone()
        return _record(row) if row else None

    def find_all(self, event_ids) -> dict[str, StoredRecord]:
        found: dict[str, StoredRecord] = {}
        ids = list(event_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            # ``+model``: keeps SQLite from answering through the (model, sequence)
            # index, which it picks for a long IN list and which reads the whole
            # stream; the event id index finds each id in a few pages.
            query = f"SELECT event_id, {_COLUMNS} FROM events WHERE +model = ? AND event_id IN ({marks})"
            params: tuple = (self.model, *chunk)
            if self._head is _UNREAD:
                # The append reads the head next: one statement instead of two (a
                # statement is a good part of a one-event append's CPU). The head
                # row comes tagged with a NULL event id, which no event has.
                # Only its sequence and hash are read: the other columns (the
                # event's bytes among them) are not fetched.
                query = (
                    f"{query} UNION ALL SELECT * FROM (SELECT NULL, NULL, NULL, sequence, NULL, NULL, NULL, NULL, hash"
                    " FROM events WHERE model = ? ORDER BY sequence DESC LIMIT 1)"
                )
                params += (self.model,)
                self._head = None
            for row in self.conn.execute(query, params):
                if row[0] is None:
                    self._head = StreamHead(row[3], row[8])
                else:
                    found[row[0]] = _record(row[1:])
        return found


class SqliteLog(EventLog):
    def __init__(self, path: str | Path, *, timeout: float = 30.0):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            self._refuse_other_database()
            self._conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BackendError(f"cannot open the embedded log at {self.path}: {exc}") from exc

    def _refuse_other_database(self) -> None:
        # A SQLite file of other tables (the views, a consumer's store) named as the
        # log must not get an empty log created beside them: it would be read as an
        # empty ledger, and appends would land in the wrong file.
        tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables.discard("sqlite_sequence")
        if tables and "events" not in tables:
            self._conn.close()
            shown = ", ".join(sorted(tables)[:3])
            raise BackendError(
                f"{self.path} is not a ledger event log (it holds tables {shown}…: is it the views database? "
                "check --log / LEDGER_LOG)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # accepted means durable
        return conn

    def append(self, model: str, plan: PlanFn) -> list[StoredRecord]:
        return self._append(model, lambda views: plan(views(model)))

    def append_round(self, partition: int, plan: RoundPlanFn) -> list[StoredRecord]:
        return self._append(None, plan)

    def _append(self, model: str | None, plan: RoundPlanFn) -> list[StoredRecord]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot lock the embedded log {self.path}: {exc}") from exc
        records = []
        try:
            views: dict[str, _View] = {}

            def view(name: str) -> _View:
                # One view per stream and append, so a snapshot kept by any of a
                # round's decisions on it is written below.
                if name not in views:
                    views[name] = _View(conn, name)
                return views[name]

            records = plan(view)
            now = int(time.time() * 1000)
            hashes = [record.hash for record in records]
            rows = [
                (r.model, r.sequence, r.event_id, r.event_type, r.fingerprint, r.data, digest, now)
                for r, digest in zip(records, hashes)
            ]
            insert = (
                "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            )
            if len(rows) == 1:
                last = conn.execute(insert, rows[0]).lastrowid
            else:
                conn.executemany(insert, rows)
                # Under the write lock, one statement's rows take consecutive positions
                # (AUTOINCREMENT): the last one is the largest there is.
                last = conn.execute("SELECT MAX(position) FROM events").fetchone()[0] if records else 0
            first = last - len(records) + 1
            stored = [
                StoredRecord(
                    Position(0, first + index),
                    record.model,
                    record.sequence,
                    record.event_type,
                    record.fingerprint,
                    record.data,
                    now,
                    digest,
                )
                for index, (record, digest) in enumerate(zip(records, hashes))
            ]
            kept = [(name, v.kept.sequence, v.kept.hash, v.kept.state) for name, v in views.items() if v.kept is not None]
            if kept:
                conn.executemany(
                    "INSERT OR REPLACE INTO rule_snapshots (model, sequence, hash, state) VALUES (?, ?, ?, ?)", kept
                )
            conn.execute("COMMIT")
            return stored
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            if "events.event_id" in str(exc):
                # Event ids are unique in the whole file, not only in the stream the
                # plan looked at: an id another model's event holds. Retrying cannot
                # help, so this is no ConflictError.
                raise RuleViolation("event-id-unique", self._id_clash(records)) from exc
            where = repr(model) if model is not None else "a model of this round"
            raise ConflictError(f"another writer appended to {where} first ({exc})") from exc
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise BackendError(f"embedded log write failed: {exc}") from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _id_clash(self, records) -> str:
        ids = [r.event_id for r in records]
        for event_id in ids:
            row = self._conn.execute("SELECT model FROM events WHERE event_id = ?", (event_id,)).fetchone()
            if row:
                return f"event id {event_id} is already used by an event of model {row[0]!r}"
        twice = next((i for i in ids if ids.count(i) > 1), "?")
        return f"event id {twice} is given to more than one event of this append"

    def read(self, after: dict[int, int] | None = None, *, model: str | None = None) -> Iterator[StoredRecord]:
        start = (after or {}).get(0, 0)
        query = f"SELECT {_COLUMNS} FROM events WHERE position > ?"
        params: list = [start]
        if model is not None:
            query += " AND model = ?"
            params.append(model)
        query += " ORDER BY position"
        # A separate connection so a long read never holds up writers.
        conn = self._connect()
        try:
            for row in conn.execute(query, params):
                yield _record(row)
        finally:
            conn.close()

    def read_leaves(self, after: int = 0) -> Iterator[tuple[int, str, bytes]]:
        """``(position, model, stored bytes)`` of every record after ``after``, in
        log order: all the Merkle tree needs (``ledger.checkpoints``), three times
        faster than :meth:`read` on a million records."""
        conn = self._connect()
        try:
            for position, model, data in conn.execute(
                "SELECT position, model, data FROM events WHERE position > ? ORDER BY position", (after,)
            ):
                yield position, model, bytes(data)
        finally:
            conn.close()

    def read_streams(self) -> Iterator[StoredRecord]:
        """Every record, stream after stream: records without a model first, then
        each model's in log order, models in the order of their first record (what
        ``verify(..., grouped=True)`` takes)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")  # one read snapshot for every stream
            order = [row[0] for row in conn.execute("SELECT model FROM events GROUP BY model ORDER BY model != '', MIN(position)")]
            for model in order:
                for row in conn.execute(f"SELECT {_COLUMNS} FROM events WHERE model = ? ORDER BY position", (model,)):
                    yield _record(row)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def models(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT model FROM events ORDER BY model")]

    def end_offsets(self) -> dict[int, int]:
        row = self._conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return {0: row[0] + 1}

    def close(self) -> None:
        self._conn.close()
