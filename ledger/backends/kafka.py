"""The Kafka log: one lifecycle topic keyed by model name.

Layout
------
One topic (created here if missing: ``retention.ms=-1``, ``retention.bytes=-1``,
``cleanup.policy=delete`` — events are never deleted nor compacted away). The record
key is the model name in UTF-8, so Kafka's default partitioner (murmur2, the Java
client's) puts each model stream in one partition and keeps it ordered there. The
value is the exact Avro single-object bytes the append path produced — the same bytes
the embedded log stores. Headers repeat what a router needs without decoding:
``event_type``, ``fingerprint`` (8 raw bytes), ``hash`` (hex SHA-256 of the value,
read back as :attr:`StoredRecord.recorded_hash` so ``verify`` catches an altered last
event), plus ``event_id`` and ``sequence`` so the writer indexes a partition without
decoding every value.

Write path: one writer per partition at a time, embedded in every process
-------------------------------------------------------------------------
Kafka has no conditional append, and the lifecycle rules need the stream's current
state. Every process that appends to partition *p* uses the same transactional id,
``ledger-writer.<topic>.<p>``. :meth:`KafkaLog.append`:

1. picks *p* for the model's key;
2. if this process holds no live producer for *p*, creates one and calls
   ``init_transactions()``. The transaction coordinator then bumps the id's epoch:
   every other producer of that id is fenced, and its open transaction aborted (or,
   if it was already committing, completed before ``init_transactions`` returns);
3. catches up: reads *p* with a ``read_committed`` consumer from the last offset this
   process indexed up to the last stable offset, into an in-memory index (per
   model: its records in order, event id → record). When this producer's previous
   append was seen readable and the partition's high watermark is just past its
   commit marker, nothing else was written: one offset lookup instead of two;
4. calls ``plan`` on a view of that index — rules, sequence and hash chain are
   decided against it; whatever ``plan`` raises propagates with nothing begun;
5. begins a transaction, sends the records to *p*, commits. Success means the
   records are durable (``acks=all``); they join the index at the offsets the
   broker gave them. ``commit_transaction`` returns before the coordinator has
   written the commit markers, so the append then waits (milliseconds) until the
   last stable offset passes its records: an accepted event is readable at once.
   Between the send and the commit, the new event ids are checked against every
   other partition (committed records and open transactions): event ids are unique
   in the whole log, as on the embedded log (``_check_ids_unused``; the argument is
   in ``docs/kafka-write-path.md``).

If the commit fails because another writer took the id (``ProducerFencedError``,
``InvalidProducerEpochError``) or is refused otherwise, this process closes its
producer, backs off (jittered), re-initialises (fencing the other one in turn and
settling its own transaction), catches up and calls ``plan`` again — up to
``MAX_ATTEMPTS`` times, then :class:`ConflictError`. Re-planning is always safe: an
event whose commit did get through is found by its id and answered as a duplicate.
An unreachable broker is a :class:`BackendError` (outcome unknown; a retry with the
same event ids is safe) after ``timeout_ms`` (10 s by default), never a hang.

Why this is correct: a commit succeeds only if nobody initialised the id after this
producer did (the broker rejects the old epoch on produce, AddPartitionsToTxn and
EndTxn). Every write by an earlier holder of the id was committed or aborted before
this producer's init returned, so it is below the last stable offset this process
reads *after* its init. Hence the state ``plan`` validated against contains every
committed write of the partition, and nothing can be committed in between:
invariants 1–3 hold across processes. ``tests/integration/test_concurrent_writers.py``
checks it with racing processes and a fenced zombie.

One more guard makes the catch-up trustworthy: a transaction left open on *p* by a
producer that is not a ledger writer (or a "hanging" transaction) holds the last
stable offset back, and committed ledger records above it would be invisible. Before
reading, the writer requires the last stable offset to reach the high watermark
(measured first). The only exception is this process's own last commit whose
markers the coordinator is still writing (then nobody else can have written since).
If an open transaction does not clear, the writer re-initialises once (which
aborts a crashed ledger writer's transaction) and then refuses with
:class:`BackendError` naming the offset, rather than validating against a partial
view.

Costs, and the alternative (see ``docs/kafka-write-path.md``): an ``init_transactions``
(tens to hundreds of milliseconds) whenever a process writes a partition another
process wrote since; two processes alternating on one partition ping-pong the id,
each switch paying that init and one failed commit. Partitions are independent, so
writers of models on different partitions do not interfere. A command topic served by
one writer service would avoid the ping-pong but add a service, a request/reply
protocol and a round trip; the embedded writer keeps ``emit`` synchronous with no
service to run.

Reading
-------
:meth:`KafkaLog.read` reads ``read_committed``, partition by partition (0, 1, …),
each in offset order, up to the end offsets captured when the call starts. Offsets are
not consecutive: transaction markers take offsets too. Values are returned raw, never
decoded here, so foreign or damaged records reach projections (which quarantine them)
instead of stopping the read. ``sequence`` comes from the header when present.

Assumptions: only ledger writers produce ledger-keyed records to the topic, and its
partition count never changes after the first event (adding partitions remaps keys
and would split model streams). A process keeps the index of the partitions it wrote
in memory: fine for lifecycle events (thousands, not billions).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import kafka.errors as kerrors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec
from kafka.partitioner import DefaultPartitioner
from kafka.protocol.consumer.offsets import IsolationLevel

from ledger import codec
from ledger.errors import BackendError, ConflictError, DecodeError, InputError, RuleViolation
from ledger.log import EventLog, NewRecord, PlanFn, Position, RoundPlanFn, StoredRecord, StreamHead, StreamView

log = logging.getLogger(__name__)

WRITER_ID = "ledger-writer.{topic}.{partition}"
"""Transactional id of partition ``partition``'s writer, the same in every process."""

MAX_ATTEMPTS = 8
"""Attempts of one append that keeps losing the writer role before ConflictError."""

BACKOFF_S = 0.02
"""First back-off after losing the writer role; doubles per attempt (capped), with
full jitter so that racing processes stop fencing each other in lock step."""

OPTIONS: dict[str, type] = {
    "client_id": str,
    "timeout_ms": int,
    "deadline_ms": int,
    "transaction_timeout_ms": int,
    "min_insync_replicas": int,
    "security_protocol": str,
    "sasl_mechanism": str,
    "sasl_plain_username": str,
    "sasl_plain_password": str,
    "ssl_cafile": str,
}
"""Extra ``kafka://…?name=value`` options the log accepts."""

_SECURITY_OPTIONS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "ssl_cafile")

# The broker answers these when another producer initialised the same transactional id.
_LOST_WRITER_ROLE = (kerrors.ProducerFencedError, kerrors.InvalidProducerEpochError)


_UNREACHABLE = (
    kerrors.KafkaTimeoutError,
    kerrors.RequestTimedOutError,
    kerrors.KafkaConnectionError,
    OSError,
)


def _caused_by(exc: BaseException | None, kinds: tuple[type[BaseException], ...]) -> bool:
    # kafka-python re-raises a transactional failure as a plain KafkaError whose
    # message names the cause, so the names are looked for too.
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, kinds) or any(kind.__name__ in str(exc) for kind in kinds):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _lost_writer_role(exc: BaseException | None) -> bool:
    return _caused_by(exc, _LOST_WRITER_ROLE)


def _unreachable(exc: BaseException | None) -> bool:
    return _caused_by(exc, _UNREACHABLE)


def _sender_alive(producer: KafkaProducer) -> bool:
    sender = getattr(producer, "_sender", None)
    return sender is None or sender.is_alive()


def _commit(producer: KafkaProducer, timeout_s: float) -> None:
    """``commit_transaction()`` with a bound.

    kafka-python 3.0.12's ``commit_transaction`` waits on its result without a
    timeout; after a broker SIGKILL the producer's I/O thread can die
    (``IllegalStateError: Cannot reset producer state for a transactional
    producer`` in ``kafka.producer.sender``) and the wait never ends, though the
    broker has long aborted the transaction. These are the same three steps, with
    the wait bounded; the caller then drops the producer. Outcome unknown: the
    next writer's init settles the transaction, and a retry finds a committed
    event by its id."""
    manager = getattr(producer, "_transaction_manager", None)
    if manager is None or not hasattr(manager, "begin_commit"):
        producer.commit_transaction()  # another kafka-python: its own bounds apply
        return
    if not _sender_alive(producer):
        raise kerrors.KafkaConnectionError("the producer's I/O thread is dead")
    result = manager.begin_commit()
    producer._sender.wakeup()
    deadline = time.monotonic() + timeout_s
    while not result.wait(timeout_ms=100):
        if time.monotonic() > deadline or not _sender_alive(producer):
            raise kerrors.KafkaTimeoutError(f"the transaction's commit was not confirmed within {timeout_s:.1f} s")


_TOPIC_NAME = re.compile(r"[A-Za-z0-9._\-]{1,249}")


def _check_address(server: str) -> None:
    """Refuse a broker address kafka-python would choke on with a traceback."""
    host, colon, port = server.rpartition(":")
    if not colon or server.endswith("]") or (":" in host and not host.startswith("[")):
        return  # no port given (kafka-python's default), or a bare IPv6 address
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise InputError(f"broker address {server!r}: the port must be a number from 1 to 65535")


class _Partitions:
    """Just enough of kafka-python's cluster metadata for ``DefaultPartitioner``,
    so the partition of a key is computed exactly as every Kafka client does."""

    def __init__(self, topic: str, count: int):
        self._topic = topic
        self._partitions = set(range(count))

    def topics(self):
        return {self._topic}

    def partitions_for_topic(self, topic):
        return self._partitions

    def available_partitions_for_topic(self, topic):
        return self._partitions


@dataclass
class _Stream:
    records: list[StoredRecord] = field(default_factory=list)
    by_event_id: dict[str, StoredRecord] = field(default_factory=dict)


@dataclass
class _PartitionIndex:
    next_offset: int = 0
    """The first offset not yet read into the index."""
    streams: dict[str, _Stream] = field(default_factory=dict)
    own_first: int | None = None
    """First offset of the current producer's last commit (its markers may be pending)."""
    own_last: int | None = None
    """Last offset of that commit."""
    readable: bool = False
    """This producer's last append committed and was seen readable (its commit
    marker is written; see :meth:`KafkaLog._catch_up`)."""
    owners: dict[str, str] = field(default_factory=dict)
    """Event id → model of the event that first used it on this partition."""

    def add(self, record: StoredRecord, event_id: str | None) -> None:
        stream = self.streams.setdefault(record.model, _Stream())
        stream.records.append(record)
        if event_id:
            stream.by_event_id[event_id] = record
            self.owners.setdefault(event_id, record.model)


class _IdInFlight(Exception):
    """An event id being appended is also in another writer's open transaction."""


class _View(StreamView):
    def __init__(self, stream: _Stream):
        self.stream = stream

    def head(self) -> StreamHead | None:
        if not self.stream.records:
            return None
        last = self.stream.records[-1]
        # -1 for a record whose sequence is unknown (undecodable): matches no cached
        # state, so the append path re-folds the stream and reports the damage.
        return StreamHead(last.sequence if last.sequence is not None else -1, last.hash)

    def records_after(self, sequence: int) -> Iterator[StoredRecord]:
        records = self.stream.records
        start = 0
        # Sequences are normally 1..n in index order: skip straight to the tail.
        if 0 < sequence <= len(records) and records[sequence - 1].sequence == sequence:
            start = sequence
        for record in records[start:]:
            if record.sequence is None or record.sequence > sequence:
                yield record

    def find(self, event_id: str) -> StoredRecord | None:
        return self.stream.by_event_id.get(event_id)


class _NeedsNewWriter(Exception):
    """The partition has an open transaction this writer cannot see past."""


class KafkaLog(EventLog):
    """The ledger on a Kafka topic; see the module docstring for the write path."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str] | str,
        topic: str = "ledger.lifecycle",
        partitions: int = 3,
        replication: int = 1,
        **options: str | int,
    ):
        if isinstance(bootstrap_servers, str):
            bootstrap_servers = bootstrap_servers.split(",")
        self.bootstrap_servers = [s for s in bootstrap_servers if s]
        if not self.bootstrap_servers:
            raise InputError("the Kafka log needs at least one broker address (HOST:PORT)")
        for server in self.bootstrap_servers:
            _check_address(server)
        if not _TOPIC_NAME.fullmatch(topic or ""):
            raise InputError(
                f"{topic!r} is not a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -)"
            )
        if partitions < 1 or replication < 1:
            raise InputError(f"partitions ({partitions}) and replication ({replication}) must be at least 1")
        self.topic = topic
        self.options = self._parse_options(options)
        for name in ("timeout_ms", "deadline_ms", "transaction_timeout_ms", "min_insync_replicas"):
            if name in self.options and self.options[name] < 1:
                raise InputError(f"Kafka log option {name} must be at least 1, not {self.options[name]}")
        self.replication = replication
        self.url = f"kafka://{','.join(self.bootstrap_servers)}/{topic}?partitions={partitions}&replication={replication}"
        self._timeout_ms = self.options.get("timeout_ms", 10_000)
        self._deadline_ms = self.options.get("deadline_ms", self._timeout_ms)
        self._lock = threading.RLock()
        self._admin_lock = threading.Lock()
        self._producers: dict[int, KafkaProducer] = {}
        self._index: dict[int, _PartitionIndex] = {}
        self._consumer: KafkaConsumer | None = None
        self._tail_consumer: KafkaConsumer | None = None
        self._closed = False
        self._admin = self._connect_admin()
        try:
            self._partition_count = self._ensure_topic(partitions, replication)
        except BaseException:
            self._admin.close()
            raise
        self._partitioner = DefaultPartitioner()
        self._cluster = _Partitions(topic, self._partition_count)

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _parse_options(options: dict) -> dict:
        parsed = {}
        for name, value in options.items():
            kind = OPTIONS.get(name)
            if kind is None:
                known = ", ".join(sorted(OPTIONS))
                raise InputError(f"unknown Kafka log option {name!r}; known options: {known}")
            try:
                parsed[name] = kind(value)
            except (TypeError, ValueError) as exc:
                raise InputError(f"Kafka log option {name}={value!r} must be {kind.__name__}") from exc
        return parsed

    def _client_config(self) -> dict:
        config = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.options.get("client_id", "ledger"),
            "bootstrap_timeout_ms": self._timeout_ms,
            "request_timeout_ms": max(self._timeout_ms, 5_000),
            # kafka-python backs off reconnects exponentially up to 30 s by default:
            # after a broker restart the writer stalled 18-30 s though the broker
            # answered after ~15 s. 1 s keeps the resumption within a second or so.
            "reconnect_backoff_max_ms": 1_000,
        }
        config.update({k: self.options[k] for k in _SECURITY_OPTIONS if k in self.options})
        return config

    @property
    def _where(self) -> str:
        return f"Kafka at {','.join(self.bootstrap_servers)}"

    def _connect_admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(**self._client_config())
        except kerrors.KafkaConfigurationError as exc:
            raise InputError(f"bad Kafka client option: {exc}") from exc
        except (kerrors.KafkaError, OSError) as exc:
            raise BackendError(f"cannot reach {self._where}: {exc}") from exc

    @contextmanager
    def _kafka_errors(self, doing: str):
        try:
            yield
        except (BackendError, InputError, ConflictError):
            raise
        except _UNREACHABLE as exc:
            raise BackendError(f"cannot reach {self._where} while {doing} (topic {self.topic!r}): {exc}") from exc
        except (kerrors.KafkaError, OSError) as exc:
            raise BackendError(f"{doing} on {self._where} (topic {self.topic!r}) failed: {exc}") from exc

    def _ensure_topic(self, partitions: int, replication: int) -> int:
        """Create the topic if missing; the number of partitions it really has."""
        min_isr = self.options.get("min_insync_replicas", max(1, min(replication - 1, 2)))
        configs = {
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "min.insync.replicas": str(min_isr),
        }
        with self._kafka_errors("creating the ledger topic"), self._admin_lock:
            if self.topic not in self._admin.list_topics():
                try:
                    self._admin.create_topics(
                        {self.topic: {"num_partitions": partitions, "replication_factor": replication, "configs": configs}},
                        timeout_ms=self._timeout_ms,
                        wait_for_metadata=True,
                    )
                except kerrors.TopicAlreadyExistsError:
                    pass  # another process created it between our look and our create
                except kerrors.InvalidReplicationFactorError as exc:
                    raise BackendError(
                        f"cannot create topic {self.topic!r} with replication {replication} on {self._where}: {exc}"
                    ) from exc
            else:
                self._warn_about_existing_topic()
            described = self._admin.describe_topics([self.topic])
        count = len(described[0]["partitions"]) if described else 0
        if count == 0:
            raise BackendError(f"topic {self.topic!r} on {self._where} has no partitions")
        if count != partitions:
            log.warning(
                "topic %r has %d partitions, not the %d asked for: using %d (a topic's "
                "partition count must never change once it holds events)",
                self.topic, count, partitions, count,
            )
        return count

    def _warn_about_existing_topic(self) -> None:
        wanted = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
        try:
            found = self._admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, self.topic, configs=dict.fromkeys(wanted))],
                config_filter="all",
            )
            actual = found["topic"][self.topic]
        except (kerrors.KafkaError, KeyError, TypeError):
            return  # the check is advice; not being allowed to describe is no failure
        for name, value in wanted.items():
            got = (actual.get(name) or {}).get("value")
            if got is not None and got != value:
                log.warning(
                    "topic %r has %s=%s; the ledger expects %s (events must never be deleted or compacted)",
                    self.topic, name, got, value,
                )

    # ------------------------------------------------------------------ layout

    def partition_for(self, model: str) -> int:
        """The partition of ``model``'s stream: Kafka's default partitioner on its key."""
        key = model.encode("utf-8")
        return self._partitioner.partition(self.topic, key, key, None, None, self._cluster)

    def partitions(self) -> list[int]:
        return list(range(self._partition_count))

    def _tps(self, partitions) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in partitions]

    def _list_offsets(self, partitions, isolation: IsolationLevel) -> dict[int, int]:
        with self._admin_lock:
            found = self._admin.list_partition_offsets(
                {tp: OffsetSpec.LATEST for tp in self._tps(partitions)},
                isolation_level=isolation,
                timeout_ms=self._timeout_ms,
            )
        return {tp.partition: found[tp].offset for tp in found}

    def _writer_offsets(self, partitions, isolation: IsolationLevel) -> dict[int, int]:
        """:meth:`_list_offsets` for the write path (called under ``self._lock``):
        through the writer's own consumers, which keep the partitions' leaders
        in their metadata. The admin client asks for the topic's metadata before
        every ListOffsets: ~1.7 ms of CPU and two round trips per call, five calls
        per append."""
        if isolation == IsolationLevel.READ_COMMITTED:
            if self._consumer is None:
                self._consumer = self._new_consumer()
            consumer = self._consumer
        else:
            if self._tail_consumer is None:
                self._tail_consumer = self._new_consumer("read_uncommitted")
            consumer = self._tail_consumer
        found = consumer.end_offsets(self._tps(partitions), timeout_ms=self._timeout_ms)
        return {tp.partition: offset for tp, offset in found.items()}

    def end_offsets(self) -> dict[int, int]:
        """Per partition, the last stable offset: where a read_committed reader stops."""
        self._check_open()
        with self._kafka_errors("reading end offsets"):
            return self._list_offsets(self.partitions(), IsolationLevel.READ_COMMITTED)

    # ------------------------------------------------------------------ records

    def _stored(self, record) -> tuple[StoredRecord, str | None]:
        headers: dict[str, bytes] = {}
        for name, value in record.headers or ():
            headers[name] = value

        def text(name: str) -> str | None:
            value = headers.get(name)
            return value.decode("ascii", "replace") if value is not None else None

        sequence = text("sequence")
        stored = StoredRecord(
            position=Position(record.partition, record.offset),
            model=record.key.decode("utf-8", "replace") if record.key is not None else None,
            sequence=int(sequence) if sequence and sequence.isdigit() else None,
            event_type=text("event_type"),
            fingerprint=headers.get("fingerprint"),
            data=record.value if record.value is not None else b"",
            timestamp_ms=record.timestamp,
            recorded_hash=text("hash"),
        )
        return stored, text("event_id")

    def _new_consumer(self, isolation_level: str = "read_committed") -> KafkaConsumer:
        return KafkaConsumer(
            **self._client_config(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation_level,
            auto_offset_reset="earliest",
        )

    def _fetch(self, consumer: KafkaConsumer, tp: TopicPartition, start: int, end: int) -> Iterator:
        """Raw records of ``tp`` with offsets in ``[start, end)``, in order."""
        consumer.assign([tp])
        consumer.seek(tp, start)
        idle_since = time.monotonic()
        while True:
            position = consumer.position(tp, timeout_ms=self._timeout_ms)
            if position is not None and position >= end:
                return
            batch = consumer.poll(timeout_ms=10, max_records=1000)
            records = batch.get(tp, ())
            if records:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self._timeout_ms / 1000:
                raise BackendError(
                    f"reading partition {tp.partition} of {self.topic!r} on {self._where} made no "
                    f"progress for {self._timeout_ms} ms (at offset {position}, reading up to {end})"
                )
            for record in records:
                if record.offset >= end:
                    return
                yield record

    def read(self, after: dict[int, int] | None = None, *, model: str | None = None) -> Iterator[StoredRecord]:
        """Committed records after ``after``, partition by partition, each in offset
        order, up to the end offsets of the moment the call starts.

        With ``model``, only that model's partition is read (its stream lives there)."""
        self._check_open()
        after = after or {}
        partitions = [self.partition_for(model)] if model is not None else self.partitions()
        with self._kafka_errors("reading the log"):
            ends = self._list_offsets(partitions, IsolationLevel.READ_COMMITTED)
            consumer = self._new_consumer()
        try:
            for partition in partitions:
                start = after.get(partition, -1) + 1
                if start >= ends[partition]:
                    continue
                with self._kafka_errors(f"reading partition {partition}"):
                    tp = TopicPartition(self.topic, partition)
                    for raw in self._fetch(consumer, tp, start, ends[partition]):
                        stored, _ = self._stored(raw)
                        if model is None or stored.model == model:
                            yield stored
        finally:
            consumer.close(autocommit=False, timeout_ms=1000)

    def models(self) -> list[str]:
        return sorted({r.model for r in self.read() if r.model})

    # ------------------------------------------------------------------ writing

    def _producer(self, partition: int, block_ms: int | None = None) -> tuple[KafkaProducer, bool]:
        """This process's producer for ``partition``, and whether it is new (just
        initialised, which fenced every other writer of the partition)."""
        producer = self._producers.get(partition)
        if producer is not None and _sender_alive(producer):
            return producer, False
        if producer is not None:
            # Its I/O thread died (seen after a broker SIGKILL): every wait on it
            # would last forever. Replace it; the new init settles its transaction.
            log.warning("the writer of partition %d lost its I/O thread; replacing it", partition)
            self._drop_producer(partition)
        config = self._client_config()
        producer = KafkaProducer(
            **config,
            transactional_id=WRITER_ID.format(topic=self.topic, partition=partition),
            transaction_timeout_ms=self.options.get("transaction_timeout_ms", 15_000),
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            # kafka-python's sender waits retry_backoff_ms between the steps of
            # init_transactions (coordinator lookup, connect, InitProducerId): 100 ms
            # by default made every writer switch cost ~220 ms; 20 ms gives ~50 ms.
            retry_backoff_ms=20,
            max_block_ms=max(1, min(self._timeout_ms, block_ms or self._timeout_ms)),
            delivery_timeout_ms=config["request_timeout_ms"] + 5_000,
        )
        try:
            producer.init_transactions()
        except BaseException:
            producer.close(timeout=0)
            raise
        self._producers[partition] = producer
        index = self._index.setdefault(partition, _PartitionIndex())
        index.own_first = index.own_last = None
        index.readable = False
        return producer, True

    def _drop_producer(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            # A fenced or failed producer has nothing worth flushing; don't let its
            # close stall the retry.
            try:
                producer.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing a broken producer is best effort
                log.debug("closing the writer of partition %d failed", partition, exc_info=True)

    def _stable_end(self, partition: int, fresh: bool) -> tuple[int, bool]:
        """The last stable offset, once no foreign transaction can hide committed
        records below the high watermark (see the module docstring); and whether
        every transaction on the partition is complete."""
        index = self._index[partition]
        deadline = time.monotonic() + (5.0 if fresh else 0.5)
        while True:
            high = self._writer_offsets([partition], IsolationLevel.READ_UNCOMMITTED)[partition]
            stable = self._writer_offsets([partition], IsolationLevel.READ_COMMITTED)[partition]
            if stable >= high:
                return stable, True
            if stable == index.own_first:
                return stable, False
            if time.monotonic() > deadline:
                if not fresh:
                    raise _NeedsNewWriter()
                raise BackendError(
                    f"partition {partition} of {self.topic!r} has a transaction open since offset "
                    f"{stable} that is not a ledger writer's (or is hanging): committed events "
                    "above it are invisible, so no event is accepted on this partition until it "
                    "completes or is aborted (kafka-transactions.sh find-hanging / abort)"
                )
            time.sleep(0.01)

    def _catch_up(self, partition: int, fresh: bool) -> _PartitionIndex:
        index = self._index[partition]
        if not fresh and index.readable and index.own_last is not None and index.next_offset == index.own_last + 1:
            # Our last transaction is complete, so its marker lies past own_last:
            # if it is the only record there, nothing else was written (one round
            # trip instead of the two of _stable_end).
            high = self._writer_offsets([partition], IsolationLevel.READ_UNCOMMITTED)[partition]
            if high == index.own_last + 2:
                index.next_offset = high
                return index
        end, settled = self._stable_end(partition, fresh)
        if settled and index.own_last is not None and index.next_offset == index.own_last + 1 == end - 1:
            # The one offset after our last commit is its marker: the transaction is
            # complete, so its marker lies in (own_last, end). Nothing to fetch.
            index.next_offset = end
        if index.next_offset >= end:
            return index
        self._index_committed(partition, index, end)
        return index

    def _index_committed(self, partition: int, index: _PartitionIndex, end: int) -> None:
        """Read ``partition``'s committed records from ``index.next_offset`` up to
        ``end`` into ``index``."""
        if index.next_offset >= end:
            return
        if self._consumer is None:
            self._consumer = self._new_consumer()
        tp = TopicPartition(self.topic, partition)
        for raw in self._fetch(self._consumer, tp, index.next_offset, end):
            stored, event_id = self._stored(raw)
            if stored.model is None:
                index.next_offset = raw.offset + 1
                continue  # a foreign record with no key belongs to no stream
            if stored.sequence is None or event_id is None:
                try:
                    event = codec.decode(stored.data)
                except DecodeError:
                    pass  # kept with sequence None: the stream refuses new events
                else:
                    event_id = str(event.event_id)
                    stored = StoredRecord(
                        stored.position, stored.model, event.sequence, stored.event_type,
                        stored.fingerprint, stored.data, stored.timestamp_ms, stored.recorded_hash,
                    )
            index.add(stored, event_id)
            # Advanced per record, so a read that fails half-way resumes without
            # indexing anything twice.
            index.next_offset = raw.offset + 1
        index.next_offset = max(index.next_offset, end)

    def _event_id_of(self, raw) -> str | None:
        stored, event_id = self._stored(raw)
        if event_id is None and stored.model is not None:
            try:
                event_id = str(codec.decode(stored.data).event_id)
            except DecodeError:
                return None
        return event_id

    def _check_ids_unused(self, partition: int, records: Sequence[NewRecord]) -> None:
        """Refuse event ids another model's event already holds, on any partition.

        Called with ``records`` sent in this writer's open transaction (acknowledged,
        not committed). This writer holds ``partition``'s writer role, so its index
        of that partition is complete. Other partitions have writers of their own,
        which this one cannot fence; so each is read in two parts, measured *after*
        our records were acknowledged: its committed records (indexed, incrementally)
        up to its last stable offset, then the records of still-open transactions
        between that and its high watermark. Another writer appending the same id
        to another partition at the same moment does the same: of two writes each
        followed by a read of the other's partition, at least one read sees the
        other's write, so at most one of them commits (both may step back; they
        then retry with jitter). An id that is only in an open transaction is
        :class:`_IdInFlight` (retry); a committed one is a rule violation."""
        ids = {r.event_id for r in records}

        def refuse(event_id: str, owner: str) -> None:
            raise RuleViolation(
                "event-id-unique", f"event id {event_id} is already used by an event of model {owner!r}"
            )

        own = self._index[partition]
        for r in records:
            if r.event_id in own.owners and own.owners[r.event_id] != r.model:
                refuse(r.event_id, own.owners[r.event_id])
        others = [p for p in self.partitions() if p != partition]
        if not others:
            return
        high = self._writer_offsets(others, IsolationLevel.READ_UNCOMMITTED)
        # A partition with nothing past what is indexed needs no second look.
        grown = [p for p in others if high[p] > self._index.setdefault(p, _PartitionIndex()).next_offset]
        stable = self._writer_offsets(grown, IsolationLevel.READ_COMMITTED) if grown else {}
        for other in others:
            index = self._index[other]
            if other in stable:
                self._index_committed(other, index, stable[other])
            for event_id in ids:
                if event_id in index.owners:
                    refuse(event_id, index.owners[event_id])
        for other in grown:
            start = self._index[other].next_offset
            if start >= high[other]:
                continue
            if self._tail_consumer is None:
                self._tail_consumer = self._new_consumer("read_uncommitted")
            tp = TopicPartition(self.topic, other)
            for raw in self._fetch(self._tail_consumer, tp, start, high[other]):
                if self._event_id_of(raw) in ids:
                    raise _IdInFlight(f"partition {other} has an open transaction with the same event id")

    def _await_markers(self, partition: int, last_offset: int, until: float | None = None) -> bool:
        """Wait until ``read_committed`` readers see the records up to ``last_offset``
        (True once they do).

        ``commit_transaction`` returns once the coordinator has logged the commit,
        before it writes the markers that make the records readable: without this,
        a client could be told "accepted" and not find its event when it reads."""
        deadline = min(time.monotonic() + self._timeout_ms / 1000, until or float("inf"))
        try:
            while self._writer_offsets([partition], IsolationLevel.READ_COMMITTED)[partition] <= last_offset:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            else:
                return True
        except kerrors.KafkaError as exc:
            log.warning("could not check that the commit on %s-%d is readable: %s", self.topic, partition, exc)
            return False
        # Committed is committed: the coordinator finishes the markers on its own.
        log.warning(
            "committed records up to offset %d of %s-%d are not readable yet after %d ms",
            last_offset, self.topic, partition, self._timeout_ms,
        )
        return False

    @staticmethod
    def _headers(record: NewRecord) -> list[tuple[str, bytes]]:
        return [
            ("event_type", record.event_type.encode("ascii")),
            ("fingerprint", record.fingerprint),
            ("hash", record.hash.encode("ascii")),
            ("event_id", record.event_id.encode("ascii")),
            ("sequence", str(record.sequence).encode("ascii")),
        ]

    def append(self, model: str, plan: PlanFn) -> list[StoredRecord]:
        return self._append(self.partition_for(model), repr(model), lambda views: plan(views(model)))

    def append_round(self, partition: int, plan: RoundPlanFn) -> list[StoredRecord]:
        """One transaction for records of several models of ``partition`` (a writer
        service's group commit); the same write path as :meth:`append`."""
        if partition not in range(self._partition_count):
            raise InputError(f"{self.topic!r} has no partition {partition}")
        return self._append(partition, f"partition {partition}", plan)

    def _append(self, partition: int, target: str, plan: RoundPlanFn) -> list[StoredRecord]:
        # ``target`` names what is appended to, in messages: a model, or a partition.
        self._check_open()
        lost = None
        with self._lock:
            # Every append ends by ``until`` plus at most one step's own bound
            # (timeout_ms): the steps below are given what is left.
            until = time.monotonic() + self._deadline_ms / 1000
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    time.sleep(random.uniform(0, min(0.5, BACKOFF_S * 2**attempt)))
                left_ms = int((until - time.monotonic()) * 1000)
                if left_ms <= 0:
                    raise BackendError(
                        f"appending to {target} on {self._where} did not finish within {self._deadline_ms} ms "
                        f"(last: {lost}), outcome unknown: retrying with the same event ids is safe"
                    )
                with self._kafka_errors(f"preparing to append to partition {partition}"):
                    producer, fresh = self._producer(partition, left_ms)
                    try:
                        index = self._catch_up(partition, fresh)
                    except _NeedsNewWriter:
                        self._drop_producer(partition)
                        continue
                records = plan(lambda name: _View(index.streams.get(name) or _Stream()))
                if not records:
                    return []
                for r in records:
                    if self.partition_for(r.model) != partition:
                        raise InputError(f"model {r.model!r} does not live in partition {partition}")
                index.readable = False
                try:
                    producer.begin_transaction()
                    futures = [
                        producer.send(
                            self.topic, value=r.data, key=r.model.encode("utf-8"), headers=self._headers(r), partition=partition
                        )
                        for r in records
                    ]
                    # Acknowledged before the id check reads other partitions
                    # (see _check_ids_unused); a refused record raises here.
                    metadata = [f.get(timeout=max(0.5, until - time.monotonic())) for f in futures]
                    try:
                        self._check_ids_unused(partition, records)
                    except (RuleViolation, _IdInFlight) as refused:
                        producer.abort_transaction()
                        if isinstance(refused, RuleViolation):
                            raise
                        lost = refused
                        continue
                    _commit(producer, max(0.5, min(self._timeout_ms / 1000, until - time.monotonic())))
                except RuleViolation:
                    raise
                except Exception as exc:  # noqa: BLE001 - sorted out just below
                    self._drop_producer(partition)
                    if not isinstance(exc, (kerrors.KafkaError, OSError)):
                        raise
                    if isinstance(exc, (kerrors.MessageSizeTooLargeError, kerrors.RecordListTooLargeError)):
                        # The broker's or producer's limit (set below ledger's own):
                        # retrying the same bytes cannot help.
                        raise InputError(f"an event for {target} is too large for {self._where}: {exc}") from exc
                    if _unreachable(exc):
                        raise BackendError(
                            f"cannot reach {self._where} while appending to {target}, outcome unknown: "
                            f"{exc}; retrying with the same event ids is safe (an event already "
                            "committed is answered as a duplicate)"
                        ) from exc
                    # Fenced, or a commit refused for another reason (Kafka 4.1 answers
                    # UNKNOWN_SERVER_ERROR to an EndTxn that races a fencing init). Either
                    # way retrying is safe: the next init settles this transaction, and
                    # plan runs again on the committed state, where an event that did get
                    # in is found by its id.
                    lost = exc
                    continue
                stored = [
                    StoredRecord(
                        Position(partition, meta.offset), r.model, r.sequence, r.event_type,
                        r.fingerprint, r.data, meta.timestamp, r.hash,
                    )
                    for r, meta in zip(records, metadata)
                ]
                for s, r in zip(stored, records):
                    index.add(s, r.event_id)
                index.next_offset = max(index.next_offset, stored[-1].position.offset + 1)
                index.own_first = stored[0].position.offset
                index.own_last = stored[-1].position.offset
                index.readable = self._await_markers(partition, index.own_last, until)
                return stored
        if isinstance(lost, _IdInFlight):
            raise ConflictError(
                f"an event id of this append was in another writer's open transaction on every one of "
                f"{MAX_ATTEMPTS} attempts ({lost}); try again"
            )
        if _lost_writer_role(lost):
            raise ConflictError(
                f"another process kept taking the writer role of partition {partition} of "
                f"{self.topic!r} ({MAX_ATTEMPTS} attempts; last: {lost}); try again"
            )
        raise BackendError(
            f"appending to {target} on {self._where} failed {MAX_ATTEMPTS} times (last: {lost}); "
            "retrying with the same event ids is safe"
        )

    # ------------------------------------------------------------------ for a writer service

    def client_config(self) -> dict:
        """Connection settings of this log's clients (for the service's group membership)."""
        return self._client_config()

    def describe_groups(self, groups: list[str]) -> dict:
        with self._admin_lock, self._kafka_errors("describing consumer groups"):
            return self._admin.describe_groups(groups)

    def release(self, partition: int) -> None:
        """Give up the writer role of ``partition`` and forget its index: another
        instance writes it now, so what this process read of it will be stale."""
        with self._lock:
            self._drop_producer(partition)
            self._index.pop(partition, None)

    # ------------------------------------------------------------------ lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"the Kafka log {self.url} is closed")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for partition in list(self._producers):
                self._drop_producer(partition)
            for consumer in (self._consumer, self._tail_consumer):
                if consumer is None:
                    continue
                try:
                    consumer.close(autocommit=False, timeout_ms=1000)
                except Exception:  # noqa: BLE001
                    log.debug("closing a catch-up consumer failed", exc_info=True)
            self._consumer = self._tail_consumer = None
            try:
                self._admin.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the admin client failed", exc_info=True)
