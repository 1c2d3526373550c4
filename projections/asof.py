"""Cuts of the log: "as of" an instant or a log position. Pure, no I/O.

A time cut uses the ledger's ``recorded_at`` (when the ledger learnt of the event),
never ``occurred_at``: the append path never lets ``recorded_at`` step back inside a
model stream, so every stream cut at an instant is a prefix of that stream, and the
fold of a prefix is a state the ledger really was in. A position cut keeps, per
partition, the records at or before an offset; a partition it does not name
contributes nothing.

Times are stored in the views as fixed-width ISO-8601 UTC text
(``2026-03-03T10:00:00.000000Z``): the same bytes on SQLite and PostgreSQL, and text
order is time order, so ``recorded_at <= :t`` compares instants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from types import MappingProxyType

from ledger.errors import InputError
from ledger.parsing import parse_instant, parse_positions

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@lru_cache(maxsize=4096)  # the events of one append share their recorded_at
def iso(moment: datetime) -> str:
    """``moment`` as the views store it."""
    if moment.tzinfo is None:
        raise InputError(f"time {moment!r} has no time zone")
    return moment.astimezone(timezone.utc).strftime(_FORMAT)


def iso_ms(milliseconds: int | None) -> str | None:
    """A backend timestamp (Unix milliseconds) as the views store times."""
    if milliseconds is None or milliseconds < 0:
        return None
    return iso(datetime.fromtimestamp(milliseconds / 1000, timezone.utc))


@dataclass(frozen=True)
class AsOf:
    """Where to cut the log: at an instant (inclusive) or at log positions (inclusive)."""

    time: str | None = None
    """The instant, as stored (see :func:`iso`)."""
    positions: Mapping[int, int] | None = field(default=None, hash=False)

    def __post_init__(self):
        if (self.time is None) == (self.positions is None):
            raise InputError("an as-of cut names either a time or log positions")
        if self.positions is not None:
            object.__setattr__(self, "positions", MappingProxyType(dict(self.positions)))

    @classmethod
    def at(cls, moment: datetime | str) -> AsOf:
        """A time cut; a string is parsed like every CLI time (``2026-03-03`` is that
        day's first instant in UTC, a time without zone is UTC)."""
        if isinstance(moment, str):
            moment = parse_instant(moment)
        return cls(time=iso(moment))

    @classmethod
    def at_positions(cls, positions: Mapping[int, int] | str) -> AsOf:
        if isinstance(positions, str):
            positions = parse_positions(positions)
        return cls(positions=dict(positions))

    @property
    def is_time(self) -> bool:
        return self.time is not None

    def includes(self, partition: int, offset: int, recorded_at: str | None) -> bool:
        """Whether a record lies inside the cut. A record with no known time (an
        unreadable one on a backend that keeps no timestamp) is outside every time cut."""
        if self.positions is not None:
            last = self.positions.get(partition)
            return last is not None and offset <= last
        return recorded_at is not None and recorded_at <= self.time

    def describe(self) -> str:
        if self.time is not None:
            return f"as of {self.time}"
        return "as of position " + ",".join(f"{p}:{o}" for p, o in sorted(self.positions.items()))
