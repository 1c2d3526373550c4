"""The runner every consumer shares: decode → policy → record → effects → outcome.

A consumer is a name, a *pure* policy (event → the effects it intends) and a way
to perform one effect. The runner does the rest, the same way for all of them:

1. **read** the log after the consumer's stored positions (``EventLog.read``,
   either backend), in batches;
2. **decode** each record; an undecodable one becomes a dead letter (position,
   bytes and reason) and the position moves on — never a crash loop, never a
   silent skip; the log line names topic, partition and offset;
3. ask the **policy** what to do (no I/O there);
4. **record** the intended effects and the new positions in ONE database
   transaction. Effects are keyed ``(consumer, event_id, channel)`` with a UNIQUE
   constraint, so a redelivered or replayed event creates nothing new;
5. only once the read is finished, **perform** the effects that are due, each
   claimed first ("sending"), then recorded as delivered, retrying (attempts,
   next attempt time, last error) or dead (with the reason, also a dead letter).

Positions belong to one log: the first batch records which
(:mod:`ledger.log_identity`), and a later run on another log is refused
(:class:`~ledger.errors.WrongLog`, exit 2) before anything is read.

Long work never runs inside a poll loop: the log is read to the end (or a batch)
and the reader closed before any effect runs, and positions are the database's,
not Kafka's consumer-group commit.

Crash windows, honestly: a crash after the effect but before its outcome is
recorded leaves the effect "sending"; once its lease runs out it is performed
again. Delivery to the outside world is therefore at-least-once in that window
and exactly-once everywhere else; each effect has a stable id
(:func:`consumers.store.effect_id`) that receivers use to de-duplicate.

Writing a consumer::

    class Shout(Consumer):
        name = "shout"
        def policy(self, event):
            return [Intent("stdout", {"text": event.event_type})] if event.version else []
        def perform(self, effect):
            print(effect.payload["text"])

    register("shout", lambda options: Shout())
    # then: ledger consume shout --once

``ledger consume NAME`` finds consumers through :data:`REGISTRY` (name →
``"module:factory"``, imported only when used).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from consumers import store as _store
from consumers.store import Effect, Store, effect_id
from ledger import codec
from ledger.follow import LogFollower, PositionMoved, backoff
from ledger.errors import BackendError, DecodeError, InputError, LedgerError
from ledger.events import Event
from ledger.log import EventLog, StoredRecord

if TYPE_CHECKING:
    from ledger.groups import Assignment

log = logging.getLogger("ledger.consumers")

__all__ = [
    "REGISTRY",
    "Consumer",
    "ConsumerOptions",
    "Effect",
    "EffectFailed",
    "Intent",
    "RetryPolicy",
    "RunReport",
    "Runner",
    "build",
    "register",
]


# --- what a consumer declares ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intent:
    """One effect a policy wants for an event. ``channel`` names where it goes (a
    notification channel, ``"train"``…); with the event id it is the effect's
    identity, so the same (event, channel) is performed at most once.
    ``payload`` is stored as JSON and handed back to :meth:`Consumer.perform`."""

    channel: str
    payload: Mapping = field(default_factory=dict)


class EffectFailed(LedgerError):
    """Raised by :meth:`Consumer.perform`: the attempt failed.

    ``permanent`` failures (a 4xx answer, a refused recipient, bad configuration)
    go to the dead letters at once; others are retried with backoff, waiting at
    least ``retry_after`` seconds when the receiver asked for it."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter: attempt n (1-based) that failed
    waits ``base_delay * 2**(n-1)``, capped at ``max_delay``, times a random factor
    in ``[1 - jitter, 1 + jitter]``; after ``max_attempts`` attempts the effect is dead."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2

    def __post_init__(self):
        if self.max_attempts < 1:
            raise InputError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise InputError("retry delays cannot be negative")
        if not 0 <= self.jitter <= 1:
            raise InputError("jitter is a fraction between 0 and 1")

    def delay(self, attempt: int, rng: random.Random | None = None, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        exponent = min(max(attempt - 1, 0), 60)  # 2**60 s is past any max_delay
        base = min(self.max_delay, self.base_delay * math.pow(2, exponent))
        factor = 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        wait = base * factor
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


class Consumer(ABC):
    """A reaction to events. Subclasses set :attr:`name` and implement
    :meth:`policy` (pure) and :meth:`perform` (the effect)."""

    name: str
    retry: RetryPolicy = RetryPolicy()
    lease_seconds: float = 300.0
    """How long an effect may stay "sending" before the runner presumes its process
    died and performs it again. Must exceed the longest effect (e.g. a training)."""

    @abstractmethod
    def policy(self, event: Event) -> Sequence[Intent]:
        """The effects this event calls for. Pure: no I/O, no clock."""

    @abstractmethod
    def perform(self, effect: Effect) -> str | None:
        """Do the effect; return a short outcome to record (e.g. ``"HTTP 200"``) or
        raise :class:`EffectFailed`. Any other exception counts as a retryable failure."""

    def retry_policy(self, effect: Effect) -> RetryPolicy:
        """The retry policy for one effect (per channel, if a consumer wants)."""
        return self.retry

    def close(self) -> None:  # noqa: B027 - optional
        pass


@dataclass(frozen=True)
class ConsumerOptions:
    """What ``ledger consume NAME`` hands a consumer's factory."""

    log_url: str
    db_url: str
    config_path: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


Factory = Callable[[ConsumerOptions], Consumer]

REGISTRY: dict[str, str | Factory] = {
    "notify": "consumers.notify:build",
    "retrain": "consumers.retrain:build",
    "openlineage": "consumers.openlineage:build",
}
"""Consumers by name: a factory, or ``"module:function"`` imported on first use
(so the CLI never imports scikit-learn just to send an e-mail)."""


def register(name: str, factory: str | Factory) -> None:
    REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(REGISTRY)


def factory(name: str) -> Factory:
    target = REGISTRY.get(name)
    if target is None:
        raise InputError(f"unknown consumer {name!r}; known: {', '.join(names())}")
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise InputError(f"consumer {name!r} is not available: module {module_name} is missing") from exc
        target = getattr(module, attr)
    return target


def build(name: str, options: ConsumerOptions) -> Consumer:
    return factory(name)(options)


# --- the runner ------------------------------------------------------------------


@dataclass
class RunReport:
    """What one run did (counts since the runner started)."""

    records: int = 0
    new_effects: int = 0
    dead_records: int = 0
    delivered: int = 0
    retried: int = 0
    dead_effects: int = 0
    waiting: int = 0
    """Effects still pending or retrying when the run ended."""

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.records} record(s) read, {self.new_effects} new effect(s), "
            f"{self.delivered} delivered, {self.retried} failed attempt(s) to retry, "
            f"{self.dead_effects} dead, {self.dead_records} undecodable record(s) dead-lettered, "
            f"{self.waiting} still waiting"
        )


class Runner:
    """Runs one consumer against one log and one database."""

    def __init__(
        self,
        consumer: Consumer,
        event_log: EventLog,
        db_url: str,
        *,
        batch_size: int = 500,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        stop: threading.Event | None = None,
    ):
        if batch_size < 1:
            raise InputError("batch_size must be at least 1")
        self.consumer = consumer
        self.log = event_log
        self.store = Store(_store.engine_for(db_url), consumer.name)
        self.batch_size = batch_size
        self.clock = clock
        self.rng = rng or random.Random()
        self.stop = stop or threading.Event()
        self.report = RunReport()
        self.follower = LogFollower(event_log, what=self._what, remedy=self._REMEDY)

    # -- which log ------------------------------------------------------------

    def _what(self) -> str:
        return f"consumer {self.consumer.name!r} in {self.store.engine.url.render_as_string(hide_password=True)} (its positions)"

    _REMEDY = "point --db at a fresh database for this log"

    def _check_log(self) -> None:
        """Refuse, before anything is read, a log other than the one this consumer's
        positions belong to; reads one record, once per runner."""
        if not self.follower.checked:
            self.follower.check(self.store.log_identity())

    def _record_log(self, conn, now: float) -> None:
        identity = self.follower.to_record(self.store.log_identity(conn))
        if identity is not None:
            self.store.record_log_identity(conn, identity, now)

    # -- reading --------------------------------------------------------------

    @property
    def topic(self) -> str:
        return getattr(self.log, "topic", None) or self.log.url

    def catch_up(self, *, from_beginning: bool = False, group: Assignment | None = None) -> int:
        """Read the log to its end, recording intents and positions batch by batch.
        ``from_beginning`` re-reads everything (recorded effects are not repeated).
        Returns how many records were read.

        With ``group`` (this process's share of a Kafka consumer group), only the
        partitions assigned now are read, from their stored positions; each batch
        is recorded while the assignment holds (a revocation waits for it) and
        with positions guarded by where the batch started (a process that stalled
        while its partitions were reassigned has its batch refused)."""
        self._check_log()
        if group is not None:
            return self._catch_up_owned(group)
        positions = {} if from_beginning else self.store.positions()
        total = 0
        while not self.stop.is_set():
            batch = self._read_batch(positions)
            if not batch:
                break
            self._record(batch, positions)
            total += len(batch)
            if len(batch) < self.batch_size:
                break
        return total

    def _catch_up_owned(self, group: Assignment) -> int:
        generation, owned = group.current()
        total = 0
        positions: dict[int, int] | None = None
        while owned and not self.stop.is_set():
            if positions is None:
                positions = {p: o for p, o in self.store.positions().items() if p in owned}
            batch = self.follower.read_batch(positions, self.batch_size, owned)
            if not batch:
                break
            with group.applying(generation) as mine:
                if not mine:
                    break  # partitions moved since the read: the next pass reads afresh
                try:
                    self._record(batch, positions, guarded=True)
                except PositionMoved as exc:
                    log.info("%s: %s; reading the stored positions again", self.consumer.name, exc)
                    positions = None
                    continue
            total += len(batch)
            if len(batch) < self.batch_size:
                break
        return total

    def _read_batch(self, positions: dict[int, int]) -> list[StoredRecord]:
        return self.follower.read_batch(positions, self.batch_size)

    def _record(self, batch: Sequence[StoredRecord], positions: dict[int, int], *, guarded: bool = False) -> None:
        now = self.clock()
        new_effects: list[dict] = []
        letters: list[dict] = []
        advanced = dict(positions)
        for record in batch:
            partition, offset = record.position
            try:
                event = codec.decode(record.data)
            except DecodeError as exc:
                log.warning(
                    "%s: undecodable record at topic %s partition %d offset %d dead-lettered: %s",
                    self.consumer.name, self.topic, partition, offset, exc,
                )
                letters.append(self._letter(record, f"undecodable: {exc}", now))
            else:
                try:
                    intents = list(self.consumer.policy(event))
                except Exception as exc:  # noqa: BLE001 - a policy bug must not stall the consumer
                    log.error(
                        "%s: policy failed on %s %s at topic %s partition %d offset %d: %r",
                        self.consumer.name, event.event_type, event.event_id, self.topic, partition, offset, exc,
                    )
                    letters.append(self._letter(record, f"policy failed on {event.event_type}: {exc!r}", now, event))
                    intents = []
                for intent in intents:
                    new_effects.append(self._effect_row(event, record, intent, now))
            advanced[partition] = max(advanced.get(partition, -1), offset)
        moved = {p: o for p, o in advanced.items() if positions.get(p) != o}
        with self.store.begin() as conn:
            self._record_log(conn, now)
            created = self.store.record_batch(
                conn, moved, new_effects, letters, now, expected=dict(positions) if guarded else None
            )
        positions.update(advanced)
        self.report.records += len(batch)
        self.report.new_effects += created
        self.report.dead_records += len(letters)

    def _letter(self, record: StoredRecord, reason: str, now: float, event: Event | None = None) -> dict:
        partition, offset = record.position
        return {
            "kind": "record",
            "subject": f"record:{partition}:{offset}",
            "partition": partition,
            "offset": offset,
            "event_id": str(event.event_id) if event else None,
            "effect_id": None,
            "channel": None,
            "reason": reason,
            "data": record.data,
            "recorded_at": now,
        }

    def _effect_row(self, event: Event, record: StoredRecord, intent: Intent, now: float) -> dict:
        event_id = str(event.event_id)
        return {
            "id": effect_id(self.consumer.name, event_id, intent.channel),
            "event_id": event_id,
            "channel": intent.channel,
            "event_type": event.event_type,
            "model": event.model,
            "version": event.version,
            "partition": record.position.partition,
            "offset": record.position.offset,
            "payload": json.dumps(dict(intent.payload), sort_keys=True, default=str),
            "status": _store.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    # -- effects --------------------------------------------------------------

    def perform_due(self) -> int:
        """Perform every effect that is due now; returns how many attempts were made."""
        attempts = 0
        lease = self.consumer.lease_seconds
        while not self.stop.is_set():
            due = self.store.due(self.clock(), lease, limit=100)
            if not due:
                break
            made = 0
            for id_ in due:
                if self.stop.is_set():
                    break
                effect = self.store.claim(id_, self.clock(), lease)
                if effect is None:
                    continue  # another process of this consumer took it
                self._attempt(effect)
                made += 1
            attempts += made
            if not made:
                break
        return attempts

    def _attempt(self, effect: Effect) -> None:
        name = self.consumer.name
        try:
            outcome = self.consumer.perform(effect)
        except EffectFailed as exc:
            self._failed(effect, exc.reason, permanent=exc.permanent, retry_after=exc.retry_after)
        except LedgerError as exc:
            self._failed(effect, str(exc), permanent=False)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is retried, bounded
            log.exception("%s: effect %s (%s) raised", name, effect.id, effect.channel)
            self._failed(effect, f"{type(exc).__name__}: {exc}", permanent=False)
        else:
            self.store.delivered(effect, outcome, self.clock())
            self.report.delivered += 1
            log.info(
                "%s: %s for %s %s delivered on attempt %d%s",
                name, effect.channel, effect.event_type, effect.event_id, effect.attempts,
                f" ({outcome})" if outcome else "",
            )

    def _failed(self, effect: Effect, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        name = self.consumer.name
        policy = self.consumer.retry_policy(effect)
        now = self.clock()
        if permanent or policy.exhausted(effect.attempts):
            why = reason if permanent else f"gave up after {effect.attempts} attempt(s): {reason}"
            self.store.dead(effect, why, now)
            self.report.dead_effects += 1
            log.warning("%s: %s for %s %s is dead: %s", name, effect.channel, effect.event_type, effect.event_id, why)
            return
        wait = policy.delay(effect.attempts, self.rng, retry_after)
        self.store.retrying(effect, reason, now + wait, now)
        self.report.retried += 1
        log.info(
            "%s: %s for %s %s failed (attempt %d/%d), retry in %.2fs: %s",
            name, effect.channel, effect.event_type, effect.event_id,
            effect.attempts, policy.max_attempts, wait, reason,
        )

    # -- modes ----------------------------------------------------------------

    def run_once(self, *, max_wait: float = 60.0, from_beginning: bool = False) -> RunReport:
        """Catch up with the log, perform what is due, and keep retrying failed
        effects while their next attempt falls within ``max_wait`` seconds of the
        start; then return. Effects still retrying stay recorded for the next run."""
        deadline = self.clock() + max(0.0, max_wait)
        self.catch_up(from_beginning=from_beginning)
        while not self.stop.is_set():
            self.perform_due()
            next_at = self.store.next_due_at(self.consumer.lease_seconds)
            if next_at is None or next_at > deadline:
                break
            self.stop.wait(max(0.0, next_at - self.clock()))
        self.report.waiting = self._waiting()
        return self.report

    def follow(
        self, *, poll_interval: float = 1.0, from_beginning: bool = False, group: Assignment | None = None
    ) -> RunReport:
        """Poll the log every ``poll_interval`` seconds until :attr:`stop` is set
        (the CLI sets it on SIGINT/SIGTERM). An unreachable log or database after
        a good start is logged and retried, not fatal.

        With ``group``, only the partitions the group assigns to this process are
        read (see :meth:`catch_up`); due effects are performed whatever their
        partition, each claimed by one process (:meth:`Store.claim
        <consumers.store.Store.claim>`)."""
        if group is not None and from_beginning:
            raise InputError("re-reading from the beginning cannot be shared in a consumer group: run one process")
        first = True
        failures = 0
        while not self.stop.is_set():
            try:
                self.catch_up(from_beginning=from_beginning and first, group=group)
                self.perform_due()
                next_at = self.store.next_due_at(self.consumer.lease_seconds)
                failures = 0
            except BackendError as exc:
                if first:
                    raise
                failures += 1
                wait = backoff(failures, poll_interval, most_doublings=6)
                log.error("%s: %s; trying again in %.0fs", self.consumer.name, exc, wait)
                self.stop.wait(wait)
                continue
            first = False
            wait = poll_interval if next_at is None else min(poll_interval, max(0.0, next_at - self.clock()))
            self.stop.wait(wait)
        self.report.waiting = self._waiting()
        return self.report

    def _waiting(self) -> int:
        counts = self.store.count_by_status()
        return sum(counts.get(s, 0) for s in (_store.PENDING, _store.RETRYING, _store.SENDING))

    def close(self) -> None:
        self.consumer.close()
