"""What a projection is: a name, the event types it follows, and ``process_event``.

The runner hands a projection the records of a batch as :class:`Item` s, inside the
transaction that will also store the projection's position; the projection writes
its rows with the connection it is given and nothing else. A projection is a
deterministic fold: everything it writes comes from the items (times from the
events, never the clock), and rows of one model stream never depend on rows of
another, so the order in which partitions interleave cannot change the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from sqlalchemy.engine import Connection

from ledger.events import Event
from ledger.identity import canonical
from ledger.log import StoredRecord


@dataclass(frozen=True, slots=True)
class Item:
    """One log record as a projection sees it."""

    record: StoredRecord
    event: Event | None
    """None when the record is unreadable (see ``problem``)."""
    problem: str | None
    at: str | None
    """When the ledger recorded it (:func:`projections.asof.iso`); for an unreadable
    record, the backend's append time if it keeps one."""
    chain: str = "ok"
    """``ok`` when the event's ``prev_hash`` is the hash of the previous event of its
    model this projection applied (and its bytes still hash to what the backend
    recorded at append time, where it keeps that); ``broken`` otherwise;
    ``unverifiable`` if unreadable."""
    stale: bool = False
    """The event's sequence is not after the last one applied for its model: a
    replayed or duplicated record. Registry and lineage leave it out (the audit
    trail shows it, with a broken chain)."""
    first: bool = False
    """No earlier event of its model was applied by this projection."""
    digest: str = ""
    """SHA-256 of the record's bytes, computed once per record (see :attr:`hash`)."""
    event_id: str = ""
    """The event's id as text, computed once per record ("" if unreadable): each
    projection writes it, and ``str(UUID)`` is not free."""

    @property
    def hash(self) -> str:
        return self.digest or self.record.hash

    @property
    def partition(self) -> int:
        return self.record.position.partition

    @property
    def offset(self) -> int:
        return self.record.position.offset


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
"""One encoder for every call: ``json.dumps`` with options builds a new one each time."""

_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE = (
    _C_ENCODER(None, str, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True)
    if _C_ENCODER is not None
    else None
)
"""``_JSON``'s C encoder, made once: ``JSONEncoder.encode`` makes one per call, which
was half the cost of a projection's JSON columns. Same options (sorted keys, compact
separators, ASCII, ``str`` for other types, NaN allowed); no check for circular
values, which a fold's plain dicts and lists never are."""


@lru_cache(maxsize=65_536)
def canonical_actor(name: str) -> str:
    """:func:`ledger.identity.canonical`, remembered: a log names few actors, and the
    Unicode normalisation was a fifth of a projection's time when done per event."""
    return canonical(name)


def as_json(value) -> str:
    """JSON text with sorted keys: the same value always gives the same bytes."""
    if _ENCODE is None or isinstance(value, str):
        return _JSON.encode(value)
    return "".join(_ENCODE(value, 0))


class Projection:
    """Base of the folds. Subclasses set ``name`` and ``follows`` and register a
    handler per event type in ``handlers``."""

    name: ClassVar[str]
    follows: ClassVar[frozenset[str]] = frozenset()
    """Event types this projection applies; others only move its position."""
    applies_stale: ClassVar[bool] = False
    wants_unreadable: ClassVar[bool] = False

    def handlers(self) -> dict[str, Callable[[Connection, Item], None]]:
        return {}

    def forget(self) -> None:
        """Drop whatever the projection keeps in memory between the batches of a run.
        The runner calls it when the database may have changed under it (another
        runner applied a batch, or a batch failed half-way)."""

    def apply(self, conn: Connection, items: Sequence[Item]) -> None:
        """Apply a batch, in order. Projections that can write a batch in fewer
        statements override this."""
        for item in items:
            if item.event is None:
                if self.wants_unreadable:
                    self.process_unreadable(conn, item)
            elif not item.stale or self.applies_stale:
                self.process_event(conn, item)

    def process_event(self, conn: Connection, item: Item) -> None:
        """Dispatch on the event's type to the handler registered for it."""
        handler = self._handlers.get(item.event.event_type)
        if handler is not None:
            handler(conn, item)

    @property
    def _handlers(self) -> dict[str, Callable[[Connection, Item], None]]:
        cached = self.__dict__.get("_handler_table")
        if cached is None:
            cached = self.__dict__["_handler_table"] = self.handlers()
        return cached

    def process_unreadable(self, conn: Connection, item: Item) -> None:
        pass
