"""The one small interface every log backend implements.

A log is a set of model streams. Inside a stream events are totally ordered by
their ``sequence`` (1, 2, 3…); across streams the log gives each record a
:class:`Position` — ``(partition, offset)`` — that only grows inside a partition.
The embedded backend has a single partition 0 whose offsets are row ids; on Kafka
the position is the topic partition and offset, and a model's stream always
lives in one partition because the record key is the model name.

Backends store and return opaque bytes; encoding, rules and hash chaining live in
:mod:`ledger.append` and are shared by every backend.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class Position(NamedTuple):
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class NewRecord:
    """An encoded event about to be appended."""

    model: str
    sequence: int
    event_id: str
    event_type: str
    fingerprint: bytes
    data: bytes
    hash: str = field(init=False, repr=False, compare=False)
    """SHA-256 of ``data``, hashed once: the append path chains to it and the
    backend stores it beside the bytes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", hashlib.sha256(self.data).hexdigest())


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read back from the log, with where it sits."""

    position: Position
    model: str
    sequence: int | None
    """The sequence the backend indexed it under (None when unreadable)."""
    event_type: str | None
    fingerprint: bytes | None
    data: bytes
    timestamp_ms: int | None = None
    """Backend's own append time (Kafka's log-append time), informative only."""
    recorded_hash: str | None = None
    """The hash the backend stored beside the bytes at append time, if it keeps
    one: lets ``verify`` detect an altered last event, which has no successor."""

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class StreamHead(NamedTuple):
    sequence: int
    hash: str


PlanFn = Callable[["StreamView"], Sequence[NewRecord]]
"""Called by :meth:`EventLog.append` with the model's current stream; returns the
records to append. It may be called more than once (after a lost race), so it must
be a pure function of the view it is given."""

RoundPlanFn = Callable[[Callable[[str], "StreamView"]], Sequence[NewRecord]]
"""Called by :meth:`EventLog.append_round` with a function giving the current
stream of any model of the partition; returns records of any of those models.
Like :data:`PlanFn` it may be called more than once and must be pure."""


class StreamView(ABC):
    """Read access to one model stream inside an append."""

    @abstractmethod
    def head(self) -> StreamHead | None:
        """The last event's sequence and hash, or None for an empty stream."""

    @abstractmethod
    def records_after(self, sequence: int) -> Iterator[StoredRecord]:
        """The stream's records with a sequence above ``sequence``, in order."""

    @abstractmethod
    def find(self, event_id: str) -> StoredRecord | None:
        """The stream's record with this event id, if any (for idempotent retries)."""

    def snapshot(self):
        """The stream's last rule-state snapshot (:class:`ledger.rule_snapshots.Snapshot`)
        if the backend keeps them, else None."""
        return None

    def keep(self, snapshot) -> None:  # noqa: B027 - optional for backends
        """Store ``snapshot`` with the records of this append, in the same atomic
        write (a backend that keeps none ignores it)."""

    def find_all(self, event_ids: Sequence[str]) -> dict[str, StoredRecord]:
        """The stream's records with these event ids, by id (a backend may look
        them up in one go)."""
        found = {}
        for event_id in event_ids:
            record = self.find(event_id)
            if record is not None:
                found[event_id] = record
        return found


class EventLog(ABC):
    """A durable, append-only log of model streams."""

    url: str

    @abstractmethod
    def append(self, model: str, plan: PlanFn) -> list[StoredRecord]:
        """Atomically append what ``plan`` returns to ``model``'s stream.

        The backend guarantees that the view ``plan`` saw was the stream's state at
        the moment of the append: if another writer appended in between, ``plan`` is
        called again on the new state. Returns the stored records."""

    def append_round(self, partition: int, plan: RoundPlanFn) -> list[StoredRecord]:
        """Atomically append what ``plan`` returns for several models of one
        partition: the group commit of a writer service, one transaction for many
        requests. Same guarantee as :meth:`append`, for every stream ``plan`` looked at."""
        raise NotImplementedError(f"{type(self).__name__} has no group commit")

    def partition_for(self, model: str) -> int:
        """The partition holding ``model``'s stream."""
        return 0

    @abstractmethod
    def read(
        self, after: dict[int, int] | None = None, *, model: str | None = None
    ) -> Iterator[StoredRecord]:
        """Every record, in log order per partition, after the given offsets
        (``{partition: last_offset_seen}``); ``model`` restricts to one stream."""

    @abstractmethod
    def models(self) -> list[str]:
        """Names of every model with at least one record."""

    def partitions(self) -> list[int]:
        return [0]

    def end_offsets(self) -> dict[int, int]:
        """The offset the next record of each partition will get."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional for backends
        pass

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def records_in_order(records: Iterable[StoredRecord]) -> list[StoredRecord]:
    return sorted(records, key=lambda r: (r.position.partition, r.position.offset))
