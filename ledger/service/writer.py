"""One writer per partition, with group commit.

Each partition the service writes has one thread that owns its writer role (on
Kafka: the partition's transactional id, so any other writer is fenced) and its
state in memory (the log's index and the appender's folded model states). Requests
queue up while a round is being committed; the next round takes every queued
request (up to :data:`MAX_ROUND`) and decides them in arrival order, each against
the state the previous ones left, in *one* atomic append. A request the rules
refuse is answered with its own error and contributes no record; its neighbours
are decided without it. Throughput under contention therefore grows with the
number of waiting clients instead of collapsing into fencing rounds.

Two requests of one round never share an event id: the second waits for the next
round, where it is decided against the committed first (a retry is answered as a
duplicate). If the backend refuses a whole round for a reason that belongs to one
request (the embedded log's file-wide unique event id), the round is replayed one
request at a time so that only that request fails.

Every request carries a deadline. A request still queued at its deadline is
dropped, unwritten, and its caller has already been told "outcome unknown". The
caller waits at most until its deadline (see :mod:`ledger.service.app`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from ledger.append import Accepted, Appender, Decision, decide
from ledger.errors import BackendError, LedgerError
from ledger.events import Event
from ledger.log import EventLog

log = logging.getLogger(__name__)

class NotOwner(BackendError):
    """This instance does not (or no longer) write the request's partition; the
    request was not started, so forwarding it to the owner is safe."""

    def __init__(self, partition: int):
        super().__init__(f"this instance does not write partition {partition}")
        self.partition = partition


MAX_ROUND = 256
"""Requests folded into one append at most (bounds a transaction's size)."""


@dataclass
class Request:
    model: str
    drafts: list[Event]
    expected_sequence: int | None
    deadline: float
    future: Future = field(default_factory=Future)
    dumps: list[dict] | None = None
    """The drafts' ``model_dump()`` as :func:`ledger.append.check_drafts` made them
    (one dump serves the checks and the encoding)."""

    @property
    def ids(self) -> set[str]:
        return {str(d.event_id) for d in self.drafts}


def _settle(future: Future, exc: BaseException | None, result=None) -> None:
    """Answer a request unless it is already answered (or cancelled by its caller)."""
    if future.done():
        return
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except Exception:  # noqa: BLE001 - InvalidStateError: answered meanwhile
        pass


class RoundObserver:
    """What a writer reports (the service turns it into metrics)."""

    def round_committed(self, partition: int, requests: int, events: int, seconds: float) -> None:
        pass


class PartitionWriter:
    def __init__(
        self,
        log: EventLog,
        appender: Appender,
        partition: int,
        *,
        observer: RoundObserver | None = None,
        retry_warm_up: float = 1.0,
        after: threading.Thread | None = None,
    ):
        self.log = log
        self.appender = appender
        self.partition = partition
        self.observer = observer or RoundObserver()
        self.retry_warm_up = retry_warm_up
        self._after = after
        """The release of this partition by a previous writer here, to wait for."""
        self._queue: deque[Request] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.ready = threading.Event()
        self.busy_since: float | None = None
        """Monotonic time the round now being committed began (None when idle)."""
        self.failing_since: float | None = None
        """Monotonic time since which every round failed to reach the log (None when
        the last one did); while set, the writer probes the log every second."""
        self._thread = threading.Thread(target=self._run, name=f"ledger-writer-{partition}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop taking rounds (queued requests are handed back); returns at once."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self._thread.join(timeout)

    def submit(self, request: Request) -> Future:
        with self._cond:
            if self._stop:
                raise NotOwner(self.partition)
            self._queue.append(request)
            self._cond.notify()
        return request.future

    # ------------------------------------------------------------------ thread

    def _warm_up(self) -> None:
        """Take the writer role and read the partition into memory before the
        first request, so the first client does not pay for it."""
        if self._after is not None:
            self._after.join()
        while not self._stop:
            try:
                self.log.append_round(self.partition, lambda views: [])
                self.ready.set()
                return
            except Exception as exc:  # noqa: BLE001 - retried until the log answers
                log.warning("partition %d: cannot take the writer role yet: %s", self.partition, exc)
                time.sleep(self.retry_warm_up)

    def _take_round(self) -> list[Request]:
        with self._cond:
            while not self._queue and not self._stop:
                if not self._cond.wait(1.0) and self.failing_since is not None:
                    return []  # idle while the log is failing: probe it
            if self._stop:
                # Moving to another instance (or shutting down): what is queued was
                # not started, and is handed back to be forwarded.
                while self._queue:
                    _settle(self._queue.popleft().future, NotOwner(self.partition))
                return []
            taken: list[Request] = []
            ids: set[str] = set()
            left: deque[Request] = deque()
            now = time.monotonic()
            while self._queue and len(taken) < MAX_ROUND:
                request = self._queue.popleft()
                if request.future.done():
                    continue
                if now > request.deadline:
                    _settle(request.future, 
                        BackendError("the request was not started before its deadline; nothing was written")
                    )
                    continue
                if ids & request.ids:
                    left.append(request)
                    continue
                ids |= request.ids
                taken.append(request)
            self._queue.extendleft(reversed(left))
            return taken

    def _run(self) -> None:
        self._warm_up()
        while True:
            requests = self._take_round()
            if not requests:
                if self._stop:
                    return
                if self.failing_since is not None:
                    self._probe()
                continue
            self.busy_since = time.monotonic()
            try:
                self._commit(requests)
            except BaseException as exc:  # noqa: BLE001 - the thread must survive any one round
                log.exception("partition %d: a round failed unexpectedly", self.partition)
                for request in requests:
                    _settle(request.future, exc)
            finally:
                self.busy_since = None

    def _probe(self) -> None:
        try:
            self.log.append_round(self.partition, lambda views: [])
        except Exception as exc:  # noqa: BLE001 - still failing; readiness says so
            log.info("partition %d: the log still fails: %s", self.partition, exc)
        else:
            self.failing_since = None

    def _commit(self, requests: list[Request]) -> None:
        started = time.monotonic()
        outcome: dict = {}

        def plan(views):
            outcome.clear()
            states: dict = {}
            grown: set[str] = set()
            results: list[Decision | Exception] = []
            records = []
            for request in requests:
                try:
                    view = views(request.model)
                    state = states.get(request.model)
                    if state is None:
                        state = self.appender.state(view, request.model)
                    known = view.find_all([str(d.event_id) for d in request.drafts])
                    decision = decide(
                        state, known.get, request.drafts,
                        expected_sequence=request.expected_sequence, clock=self.appender.clock,
                        dumps=request.dumps,
                    )
                except Exception as exc:  # noqa: BLE001 - this request's answer, not the round's
                    results.append(exc)
                    continue
                states[request.model] = decision.state
                if decision.records:
                    grown.add(request.model)
                records.extend(decision.records)
                results.append(decision)
            # A rule-state snapshot goes with the round's records, at each grown
            # stream's state after the round (a backend that keeps none ignores it).
            outcome["snapshots"] = {model: self.appender.keep_snapshot(views(model), states[model]) for model in grown}
            outcome["states"] = states
            outcome["results"] = results
            return records

        try:
            stored = self.log.append_round(self.partition, plan)
        except LedgerError as exc:
            if len(requests) > 1 and not isinstance(exc, BackendError):
                # Refused as a whole for what may be one request's fault: replay
                # one by one, so only that request is refused.
                for request in requests:
                    self._commit([request])
                return
            if isinstance(exc, BackendError) and self.failing_since is None:
                self.failing_since = time.monotonic()
            for request in requests:
                _settle(request.future, exc)
            return
        self.failing_since = None
        for model, state in outcome["states"].items():
            self.appender.remember(model, state, outcome["snapshots"].get(model))
        events = 0
        for request, result in zip(requests, outcome["results"]):
            if isinstance(result, Exception):
                _settle(request.future, result)
            else:
                answers: list[Accepted] = result.answers(stored)
                events += sum(not a.duplicate for a in answers)
                _settle(request.future, None, answers)
        self.observer.round_committed(self.partition, len(requests), events, time.monotonic() - started)


class Writers:
    """The writers of the partitions this instance writes: all of them, or those
    its group membership assigns (:meth:`assign`, :meth:`revoke`)."""

    def __init__(self, log: EventLog, *, observer: RoundObserver | None = None, partitions: list[int] | None = None):
        self.log = log
        self.observer = observer
        self.appender = Appender(log)
        self._lock = threading.Lock()
        self.by_partition: dict[int, PartitionWriter] = {}
        self._releasing: dict[int, threading.Thread] = {}
        self._initial = log.partitions() if partitions is None else partitions

    def start(self) -> None:
        self.assign(self._initial)

    def assign(self, partitions: list[int]) -> None:
        with self._lock:
            for partition in partitions:
                if partition not in self.by_partition:
                    writer = PartitionWriter(
                        self.log, self.appender, partition, observer=self.observer, after=self._releasing.get(partition)
                    )
                    self.by_partition[partition] = writer
                    writer.start()

    def revoke(self, partitions: list[int], *, wait: bool = False) -> None:
        """Stop writing ``partitions``. Returns at once (the group's rebalance
        waits for this call; a writer still taking its role can hold the log for
        seconds): the writers finish and give their role up in the background, and
        a writer started here again for one of them waits for that first."""
        with self._lock:
            writers = [self.by_partition.pop(p) for p in partitions if p in self.by_partition]
            for writer in writers:
                writer.request_stop()
                thread = threading.Thread(target=self._release, args=(writer,), name=f"ledger-release-{writer.partition}", daemon=True)
                self._releasing[writer.partition] = thread
                thread.start()
        if wait:
            for writer in writers:
                self._releasing[writer.partition].join(30)

    def _release(self, writer: PartitionWriter) -> None:
        writer.stop(timeout=60)
        release = getattr(self.log, "release", None)
        if release is not None:
            release(writer.partition)

    def stop(self) -> None:
        self.revoke(list(self.by_partition), wait=True)

    def owns(self, partition: int) -> bool:
        return partition in self.by_partition

    @property
    def ready(self) -> bool:
        return all(w.ready.is_set() for w in list(self.by_partition.values()))

    def failing(self) -> list[int]:
        """Partitions whose last round could not reach the log."""
        return [p for p, w in list(self.by_partition.items()) if w.failing_since is not None]

    def stuck(self, longer_than: float) -> list[int]:
        """Partitions whose current round has run longer than ``longer_than`` seconds."""
        now = time.monotonic()
        return [p for p, w in list(self.by_partition.items()) if w.busy_since is not None and now - w.busy_since > longer_than]

    def submit(self, request: Request) -> Future:
        partition = self.log.partition_for(request.model)
        writer = self.by_partition.get(partition)
        if writer is None:
            raise NotOwner(partition)
        return writer.submit(request)
