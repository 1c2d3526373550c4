"""Sharing a Kafka topic's partitions among processes: Kafka's own group membership.

Every member joins one consumer group and subscribes to the lifecycle topic; the
group coordinator assigns each partition to exactly one live member. The group
only *assigns*: the membership consumer reads nothing (its partitions are paused
as soon as they are assigned) and commits no offset. Whoever uses it keeps its own
positions (the projection and consumer databases keep theirs in the same
transaction as the rows they write). A SIGKILLed member stops heart-beating and
its partitions move to the others after the session timeout
(:data:`SESSION_TIMEOUT_MS`); a member that leaves cleanly hands them over at once.

Two users: the service's writers (:mod:`ledger.service.membership`, one writer per
partition) and the followers of ``ledger project --follow --group`` and ``ledger
consume … --group`` (:class:`Assignment`, :func:`sharing`).

Handing a partition over: Kafka's rebalance revokes partitions from their member
(``on_partitions_revoked``, inside the member's poll) before it gives them to
another. :meth:`Assignment.revoked` takes the lock a follower holds while a batch's
database transaction is open, so it returns only once that transaction has
committed or rolled back; every later batch of the old assignment is dropped unread
into the database. A member that stalls (paused, swapped out) past the session
timeout keeps no such promise — its partitions are reassigned while it sleeps — and
the followers' databases refuse its late batches by themselves (positions compared
in the transaction; :class:`ledger.follow.PositionMoved`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledger.errors import InputError

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 6_000
"""The broker's lowest allowed session timeout by default
(``group.min.session.timeout.ms``): how long a dead member keeps its partitions."""
HEARTBEAT_MS = 1_000
REJOIN_AFTER = 4 * SESSION_TIMEOUT_MS / 1000
"""Seconds a member may stay outside a stable group (no coordinator, or joining)
before its consumer is closed and a new one joins. kafka-python 3.0 was seen, under
load, to keep looking for the coordinator for minutes after a rebalance, its member
owning nothing while the others had every partition."""


class GroupMembership:
    """Membership of ``group`` on the topic of ``log_`` (a Kafka log): calls
    ``on_assigned`` / ``on_revoked`` with partition numbers from its own thread."""

    def __init__(
        self,
        log_,
        group: str,
        client_id: str,
        on_assigned: Callable[[list[int]], None],
        on_revoked: Callable[[list[int]], None],
    ):
        self.log = log_
        self.group = group
        self.client_id = client_id
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.joined = threading.Event()
        self.owned: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-membership", daemon=True)

    def _who(self) -> str:
        return self.client_id

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _consumer(self):
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        config = self.log.client_config()
        config["client_id"] = self.client_id
        consumer = KafkaConsumer(
            **config,
            group_id=self.group,
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            isolation_level="read_committed",
        )
        membership = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                mine = sorted(tp.partition for tp in revoked if tp.partition in membership.owned)
                if mine:
                    log.info("partitions %s move away from %s", mine, membership._who())
                    membership.owned -= set(mine)
                    membership.on_revoked(mine)

            def on_partitions_assigned(self, assigned):
                consumer.pause(*assigned)
                fresh = sorted(tp.partition for tp in assigned if tp.partition not in membership.owned)
                membership.owned |= set(fresh)
                if fresh:
                    log.info("%s now owns partitions %s", membership._who(), fresh)
                    membership.on_assigned(fresh)
                membership.joined.set()

        # Know the topic's partitions before joining: a group leader that does not
        # yet have them assigns nothing for the topic (seen once in ten runs: one
        # instance sat without partitions while the other had all three).
        deadline = time.monotonic() + 10
        while not consumer.partitions_for_topic(self.log.topic) and time.monotonic() < deadline:
            time.sleep(0.1)
        consumer.subscribe([self.log.topic], listener=Listener())
        return consumer

    def _run(self) -> None:
        consumer = None
        stable_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                    stable_at = time.monotonic()
                consumer.poll(timeout_ms=200, max_records=1)
                if _stable(consumer):
                    stable_at = time.monotonic()
                elif time.monotonic() - stable_at > REJOIN_AFTER:
                    raise TimeoutError(f"not in a stable group for {REJOIN_AFTER:g} s")
            except Exception as exc:  # noqa: BLE001 - the broker may be away; rejoin
                log.warning("group membership failed, rejoining: %s", exc)
                if consumer is not None:
                    self._close(consumer)
                    consumer = None
                if self.owned:
                    lost = sorted(self.owned)
                    self.owned.clear()
                    self.on_revoked(lost)
                self._stop.wait(1.0)
        if consumer is not None:
            self._close(consumer)
        if self.owned:
            lost = sorted(self.owned)
            self.owned.clear()
            self.on_revoked(lost)

    @staticmethod
    def _close(consumer) -> None:
        try:
            # Leaving the group hands the partitions over at once, not after the
            # session timeout.
            consumer.close(autocommit=False, timeout_ms=3000)
        except Exception:  # noqa: BLE001 - best effort
            log.debug("closing the membership consumer failed", exc_info=True)


def _stable(consumer) -> bool:
    """Whether ``consumer`` is a member of a stable group with a known coordinator
    (kafka-python's coordinator state; True when this client version has none, so
    that only a known-stuck member is rejoined)."""
    coordinator = getattr(consumer, "_coordinator", None)
    try:
        return coordinator is None or (coordinator.stable() and not coordinator.coordinator_unknown())
    except AttributeError:
        return True


class Assignment:
    """The partitions a follower owns now, and the lock that keeps a revocation
    from returning while a batch of them is being written.

    A follower notes :meth:`current` before reading, and writes each batch inside
    ``with assignment.applying(generation) as mine:`` — ``mine`` is False once the
    assignment changed since (the batch must then be dropped)."""

    def __init__(self):
        self._batch = threading.Lock()
        """Held while a batch is written; a revocation waits for it."""
        self._state = threading.Lock()
        self._owned: frozenset[int] = frozenset()
        self._generation = 0
        self.changed = threading.Event()
        """Set at every change (a follower waiting for work may look again)."""

    def current(self) -> tuple[int, frozenset[int]]:
        with self._state:
            return self._generation, self._owned

    def assigned(self, partitions: list[int]) -> None:
        # Does not wait for the batch in hand (it is of partitions still owned):
        # Kafka's client runs this callback on its I/O thread, heartbeats included.
        with self._state:
            self._owned = self._owned | frozenset(partitions)
            self._generation += 1
        self.changed.set()

    def revoked(self, partitions: list[int]) -> None:
        # Waits for the batch in hand: its transaction commits or rolls back first.
        with self._batch, self._state:
            self._owned = self._owned - frozenset(partitions)
            self._generation += 1
        self.changed.set()

    @contextmanager
    def applying(self, generation: int) -> Iterator[bool]:
        with self._batch:
            with self._state:
                mine = generation == self._generation
            yield mine


def require_kafka(log_, option: str = "--group") -> None:
    """Refuse (exit 2) a log whose partitions a consumer group cannot share."""
    if not (hasattr(log_, "client_config") and getattr(log_, "topic", None)):
        raise InputError(
            f"{option} shares a Kafka topic's partitions among processes; this log "
            f"({getattr(log_, 'url', log_)}) is not on Kafka: run one process without {option}"
        )


@contextmanager
def sharing(log_, group: str) -> Iterator[Assignment]:
    """Join ``group`` on the topic of ``log_`` for as long as the block runs; the
    assignment follows the group's decisions. Leaving hands the partitions over."""
    require_kafka(log_)
    assignment = Assignment()
    client_id = f"ledger-{socket.gethostname()}-{os.getpid()}"[:200]
    membership = GroupMembership(log_, group, client_id, assignment.assigned, assignment.revoked)
    membership.start()
    try:
        yield assignment
    finally:
        membership.stop()
