"""Following one log from stored positions: what the projection runner and the
consumer runner share.

* which log: positions only mean something in the log they were read from, so a
  database records the log's identity (:mod:`ledger.log_identity`) with its first
  batch and refuses another log — :meth:`LogFollower.check` before anything is
  read, :meth:`LogFollower.to_record` inside each write transaction (another
  process may have recorded a different log meanwhile);
* positions: reading a bounded batch after ``{partition: offset}``, and the log's
  end (cheap) to skip reads while nothing is new;
* waiting: between polls and, after an unreachable log or database, with
  exponential backoff up to a minute — both cut short by the stop signal.

No database here: the runners keep positions and identity in their own tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from ledger import log_identity
from ledger.errors import LedgerError
from ledger.log import EventLog, StoredRecord

MAX_BACKOFF = 60.0
"""Seconds: the longest wait after a failure, however many in a row."""


class PositionMoved(LedgerError):
    """Inside a write transaction: a partition's stored position is not the one
    this batch was read from — another process applied that partition meanwhile
    (its new owner in a consumer group, while this one stalled). The transaction
    is rolled back; the follower reads the stored positions again."""


class LogFollower:
    """One log, followed for one database (named by ``what`` in refusals)."""

    def __init__(self, log: EventLog, *, what: Callable[[], str], remedy: str):
        self.log = log
        self._what = what
        self.remedy = remedy
        self.identity: str | None = None
        """The identity of the log, once checked against the database's."""
        self.checked = False

    def check(self, recorded: str | None) -> None:
        """Refuse (:class:`~ledger.errors.WrongLog`), before anything is read, a log
        other than the ``recorded`` one; reads one record, once."""
        if not self.checked:
            self.identity = log_identity.check(self.log, recorded, what=self._what(), remedy=self.remedy)
            self.checked = True

    def to_record(self, recorded: str | None) -> str | None:
        """Inside a write transaction, with the identity the database holds now:
        the identity to store when none is yet (None: nothing to store), or a
        refusal when another process recorded a different log meanwhile."""
        if self.identity is None:
            found = log_identity.identify(self.log)  # the log was empty when checked
            self.identity = str(found) if found is not None else None
        if recorded is None:
            return self.identity
        if recorded != self.identity:
            log_identity.refuse(self.log, recorded, what=self._what(), remedy=self.remedy)
        return None

    def read_batch(self, after: dict[int, int], size: int, partitions: Iterable[int] | None = None) -> list[StoredRecord]:
        """Up to ``size`` records after ``after`` (of ``partitions`` only, when given);
        the reader is released before the batch is returned (so no effect runs while
        it holds a connection)."""
        if partitions is None:
            records: Iterator[StoredRecord] = self.log.read(after=dict(after))
        else:
            records = self.log.read(after=dict(after), partitions=sorted(partitions))
        batch: list[StoredRecord] = []
        try:
            for record in records:
                batch.append(record)
                if len(batch) >= size:
                    break
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()
        return batch

    def ends(self) -> dict[int, int] | None:
        """The log's end offsets, or None where the backend cannot tell cheaply."""
        try:
            return self.log.end_offsets()
        except NotImplementedError:
            return None


def backoff(failures: int, poll_interval: float, *, most_doublings: int = 60) -> float:
    """Seconds to wait after ``failures`` failures in a row: the poll interval,
    doubled per failure (at most ``most_doublings`` times), capped at a minute."""
    return min(MAX_BACKOFF, poll_interval * 2 ** min(failures, most_doublings))


class Stop:
    """The stop signal a follow loop checks: set by SIGINT/SIGTERM handlers, or
    asked of a ``should_stop`` callable."""

    def __init__(self, event: threading.Event | None = None, should_stop: Callable[[], bool] | None = None):
        self.event = event or threading.Event()
        self._should_stop = should_stop

    def __call__(self) -> bool:
        if self._should_stop is not None and self._should_stop():
            self.event.set()
        return self.event.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early once stopped."""
        if self._should_stop is None:
            self.event.wait(seconds)
            return
        # A callable cannot wake a sleeper: look at it every 50 ms.
        deadline = time.monotonic() + seconds
        while not self() and time.monotonic() < deadline:
            time.sleep(min(0.05, seconds))
