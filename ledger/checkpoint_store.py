"""Where a log's signed checkpoints are kept, beside the log: the interface, and
the embedded log's table. (The Kafka topic is
``ledger.backends.kafka_checkpoints``.) Apart from ``ledger.checkpoints`` so that
backends can implement it without importing the checkpointer."""

from __future__ import annotations

import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from pathlib import Path

from ledger.notes import NoteError, SignedCheckpoint

log = logging.getLogger(__name__)


class CheckpointStore(ABC):
    """Where a log's signed checkpoints live, beside the log. Append-only."""

    @abstractmethod
    def add(self, signed: SignedCheckpoint) -> None: ...

    @abstractmethod
    def all(self) -> list[SignedCheckpoint]:
        """Every stored checkpoint, oldest first."""

    def latest(self, origin: str) -> SignedCheckpoint | None:
        """The checkpoint of ``origin`` with the largest size; of those, the one
        stored last (a witness's co-signed copy comes after the log's own)."""
        best = None
        for signed in self.all():
            if signed.checkpoint.origin != origin:
                continue
            if best is None or signed.checkpoint.size >= best.checkpoint.size:
                best = signed
        return best

    def origins(self) -> list[str]:
        return sorted({s.checkpoint.origin for s in self.all()})

    def close(self) -> None:  # noqa: B027 - optional
        pass


class SqliteCheckpoints(CheckpointStore):
    """A ``checkpoints`` table in the embedded log's own file; the ``events``
    table is never touched. The table is created on the first checkpoint, so
    reading (an auditor's verify) never changes the file."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS checkpoints (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        origin     TEXT    NOT NULL,
        size       INTEGER NOT NULL,
        note       TEXT    NOT NULL,
        stored_ms  INTEGER NOT NULL
    );
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def add(self, signed: SignedCheckpoint) -> None:
        conn = self._connect()
        try:
            conn.executescript(self.SCHEMA)
            conn.execute(
                "INSERT INTO checkpoints (origin, size, note, stored_ms) VALUES (?, ?, ?, ?)",
                (signed.checkpoint.origin, signed.checkpoint.size, str(signed), int(time.time() * 1000)),
            )
        finally:
            conn.close()

    def all(self) -> list[SignedCheckpoint]:
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            rows = conn.execute("SELECT note FROM checkpoints ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return []  # no checkpoint was ever signed
        finally:
            conn.close()
        found = []
        for (text,) in rows:
            try:
                found.append(SignedCheckpoint.parse(text))
            except NoteError as exc:
                log.warning("skipping a malformed stored checkpoint: %s", exc)
        return found
