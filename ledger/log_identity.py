"""Which log a database follows.

Projections and consumers store ``{partition: offset}`` positions; those numbers
only mean something in the log they were read from. A database therefore records,
the first time it applies anything, the identity of that log: where its first
record sits (the lowest offset of the lowest partition holding records), the
SHA-256 of that record's bytes, and the Kafka topic when there is one. It does not
depend on how the log's URL was spelled, and checking it later reads one record:
the one at the recorded position, which must still be there with the same bytes
(events are never edited or deleted). An empty log has no identity yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.errors import WrongLog
from ledger.log import EventLog, StoredRecord

_MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True, slots=True)
class LogIdentity:
    topic: str | None
    """The Kafka topic, or None for the embedded log."""
    partition: int
    offset: int
    sha256: str

    @classmethod
    def of(cls, log: EventLog, record: StoredRecord) -> LogIdentity:
        return cls(getattr(log, "topic", None), record.position.partition, record.position.offset, record.hash)

    @classmethod
    def parse(cls, text: str) -> LogIdentity:
        where, position, digest = text.split(" ")
        partition, offset = position.split(":")
        topic = where.removeprefix("topic=") if where.startswith("topic=") else None
        return cls(topic, int(partition), int(offset), digest.removeprefix("sha256="))

    def __str__(self) -> str:
        where = f"topic={self.topic}" if self.topic is not None else "embedded"
        return f"{where} {self.partition}:{self.offset} sha256={self.sha256}"

    def describe(self) -> str:
        where = f"Kafka topic {self.topic!r}" if self.topic is not None else "an embedded log"
        return f"{where} whose first record, at {self.partition}:{self.offset}, has SHA-256 {self.sha256[:12]}…"


def _first(records) -> StoredRecord | None:
    iterator = iter(records)
    try:
        return next(iterator, None)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # release the reader (a Kafka consumer, a SQLite connection)


def identify(log: EventLog) -> LogIdentity | None:
    """The identity of ``log``: its first record; None while it is empty. Backends
    read partition by partition, so the first record read is the lowest partition's."""
    record = _first(log.read())
    return LogIdentity.of(log, record) if record is not None else None


def _record_at(log: EventLog, partition: int, offset: int) -> StoredRecord | None:
    after = {p: _MAX_OFFSET for p in log.partitions() if p != partition}
    after[partition] = offset - 1
    record = _first(log.read(after=after))
    if record is None or tuple(record.position) != (partition, offset):
        return None
    return record


def check(log: EventLog, recorded: str | None, *, what: str, remedy: str) -> str | None:
    """The identity the database should hold for ``log``: ``recorded`` when ``log``
    is that log, the identity of ``log`` when nothing is recorded yet (None for an
    empty log). Raises :class:`WrongLog` — ``what`` names the database (``"the views
    in …"``), ``remedy`` says how to proceed — when ``log`` is another log."""
    if recorded is None:
        found = identify(log)
        return str(found) if found is not None else None
    expected = LogIdentity.parse(recorded)
    record = None
    if expected.topic == getattr(log, "topic", None):
        record = _record_at(log, expected.partition, expected.offset)
    if record is None or record.hash != expected.sha256:
        refuse(log, recorded, what=what, remedy=remedy)
    return recorded


def refuse(log: EventLog, recorded: str, *, what: str, remedy: str):
    expected = LogIdentity.parse(recorded)
    raise WrongLog(f"{what} follow another log ({expected.describe()}), not {log.url}: {remedy}")
