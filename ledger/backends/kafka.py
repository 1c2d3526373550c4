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
   append was seen readable, no lookup is made before planning: the broker's answer
   to the send (step 5) must put the first record at the offset just past that
   append's commit marker, or nothing else was written; otherwise the transaction is
   aborted and the append starts again with a full catch-up;
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

Rule-state snapshots (:mod:`ledger.backends.kafka_state`): each partition's writer
keeps, on the compacted ``<topic>.state``, a snapshot written in the same transaction
as the events it covers; a fresh writer starts its index from it (checked against the
log) and reads only the records after it. ``_View`` reads the partition's prefix
when it is asked for something before the snapshot (an old event id, a stream whose
snapshot head does not check out), so every answer is the full read's.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import kafka.errors as kerrors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec
from kafka.partitioner import DefaultPartitioner
from kafka.protocol.consumer.offsets import IsolationLevel

from ledger import codec, rule_snapshots
from ledger.backends import kafka_state
from ledger.errors import BackendError, ConflictError, DecodeError, InputError, LedgerError, RuleViolation
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
    "snapshots": int,
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
    entry: kafka_state.Entry | None = None
    """The stream's head and state in the snapshot the index started from (its
    records before that snapshot's offset are not in ``records``)."""
    verified: bool = False
    """Whether the log still holds ``entry``'s head event (then it is ``records[0]``)."""


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
    loaded: bool = False
    """Whether the partition's latest rule-state snapshot was looked for."""
    base: int | None = None
    """Set when the index started from a snapshot: records below this offset are
    not indexed (but for the stream heads checked), ``prefix_ids`` holds their ids."""
    prefix_ids: kafka_state.IdFilter | None = None
    tail: list[tuple[StoredRecord, str | None]] = field(default_factory=list)
    """With ``base``: the records indexed, to re-add after reading the prefix."""
    written_at: int = 0
    """Offset of the last snapshot loaded or written (0: none): when the next is due."""
    snap_offset: int = 0
    """Offset up to which ``snap_entries`` and ``snap_ids`` are folded (the last
    snapshot's, or further: a fold of committed records is valid whether written or not)."""
    snap_entries: dict[str, kafka_state.Entry] = field(default_factory=dict)
    """Each stream's head and state below ``snap_offset``."""
    snap_ids: kafka_state.IdFilter | None = None
    """The ids below ``snap_offset``, None until built."""
    recent_ids: list[str] = field(default_factory=list)
    """Ids indexed since (to add to the next snapshot's filter)."""
    fold_after_commit: bool = False

    def add(self, record: StoredRecord, event_id: str | None) -> None:
        stream = self.streams.setdefault(record.model, _Stream())
        stream.records.append(record)
        if event_id:
            stream.by_event_id[event_id] = record
            self.owners.setdefault(event_id, record.model)
            self.recent_ids.append(event_id)
        if self.base is not None:
            self.tail.append((record, event_id))

    def may_hold_older(self, event_id: str) -> bool:
        """Whether ``event_id`` may be an id of the records below ``base``, which
        this index started without."""
        return self.base is not None and self.prefix_ids is not None and self.prefix_ids.might_hold(event_id)


class _IdInFlight(Exception):
    """An event id being appended is also in another writer's open transaction."""


class _View(StreamView):
    def __init__(self, log: KafkaLog, partition: int, index: _PartitionIndex, model: str):
        self.log, self.partition, self.index, self.model = log, partition, index, model

    @property
    def stream(self) -> _Stream:
        # Looked up at each call: reading the partition's prefix replaces the streams.
        return self.index.streams.get(self.model) or _Stream()

    def head(self) -> StreamHead | None:
        stream = self.stream
        if not stream.records:
            if stream.entry is not None:
                return StreamHead(stream.entry.sequence, stream.entry.hash)
            return None
        last = stream.records[-1]
        # -1 for a record whose sequence is unknown (undecodable): matches no cached
        # state, so the append path re-folds the stream and reports the damage.
        return StreamHead(last.sequence if last.sequence is not None else -1, last.hash)

    def _covers(self, stream: _Stream, sequence: int) -> bool:
        """Whether every record of the stream above ``sequence`` is indexed."""
        if self.index.base is None:
            return True
        if stream.entry is None:
            # A stream the snapshot does not name started after it, at #1.
            return not stream.records or stream.records[0].sequence == 1
        first = stream.entry.sequence - 1 if stream.verified else stream.entry.sequence
        return sequence >= first

    def records_after(self, sequence: int) -> Iterator[StoredRecord]:
        if not self._covers(self.stream, sequence):
            self.log._read_prefix(self.partition, self.index, f"stream {self.model!r} before #{sequence + 1} was asked for")
        records = self.stream.records
        start = 0
        # Sequences are normally consecutive in index order: skip straight to the tail.
        if records and records[0].sequence is not None:
            at = sequence - records[0].sequence + 1
            if 0 < at <= len(records) and records[at - 1].sequence == sequence:
                start = at
        for record in records[start:]:
            if record.sequence is None or record.sequence > sequence:
                yield record

    def find(self, event_id: str) -> StoredRecord | None:
        found = self.stream.by_event_id.get(event_id)
        if found is None and self.index.may_hold_older(event_id):
            self.log._read_prefix(self.partition, self.index, f"event id {event_id} may be an older event's")
            found = self.stream.by_event_id.get(event_id)
        return found

    def snapshot(self):
        stream = self.stream
        entry = stream.entry
        if entry is None or entry.state is None or self.index.base is None:
            return None
        if not (stream.verified or self.log._verify_head(self.partition, self.index, self.model, stream)) or (
            len(stream.records) > 1 and stream.records[1].sequence != entry.sequence + 1
        ):
            self.log._read_prefix(
                self.partition, self.index,
                f"the snapshot's head of stream {self.model!r} (#{entry.sequence} at offset {entry.offset}) "
                "is not what the log holds there", trusted=False,
            )
            return None
        return rule_snapshots.Snapshot(entry.sequence, entry.hash, entry.state)


class _Overtaken(Exception):
    """A record reached the partition between this writer's last commit and its send."""


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
        self.state_topic = kafka_state.state_topic(topic)
        self._state_ready: bool | None = None
        """Whether snapshots are written (None: the state topic not looked at yet)."""
        self.records_fetched: dict[int, int] = {}
        """Records of each lifecycle partition read by this process (what a start
        from a rule-state snapshot saves; for tests and benches)."""
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
                if tp.topic == self.topic:
                    self.records_fetched[tp.partition] = self.records_fetched.get(tp.partition, 0) + 1
                yield record

    def read(
        self, after: dict[int, int] | None = None, *, model: str | None = None, partitions: Iterable[int] | None = None
    ) -> Iterator[StoredRecord]:
        """Committed records after ``after``, partition by partition, each in offset
        order, up to the end offsets of the moment the call starts.

        With ``model``, only that model's partition is read (its stream lives there);
        with ``partitions``, only those (a member's share of a consumer group)."""
        self._check_open()
        after = after or {}
        only = None if partitions is None else set(partitions)
        partitions = [self.partition_for(model)] if model is not None else self.partitions()
        if only is not None:
            partitions = [p for p in partitions if p in only]
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
            # Room for a rule-state snapshot (events are held to 1 MB by the append path).
            max_request_size=kafka_state.MAX_BYTES + 64 * 1024,
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

    @staticmethod
    def _trusts_index(index: _PartitionIndex, fresh: bool) -> bool:
        """Whether this writer's last append committed, was seen readable, and was
        the last thing it indexed: then the index is the partition's state unless
        something was written since, which the next send's offset tells."""
        return not fresh and index.readable and index.own_last is not None and index.next_offset == index.own_last + 1

    def _caught_up(self, partition: int, fresh: bool) -> _PartitionIndex | None:
        """:meth:`_catch_up`; None when an open transaction needs a new writer (the
        producer is dropped: the caller starts its attempt again)."""
        with self._kafka_errors(f"preparing to append to partition {partition}"):
            try:
                return self._catch_up(partition, fresh)
            except _NeedsNewWriter:
                self._drop_producer(partition)
                return None

    def _catch_up(self, partition: int, fresh: bool) -> _PartitionIndex:
        index = self._index[partition]
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
        ``end`` into ``index`` (the first time, from its rule-state snapshot on)."""
        if not index.loaded and index.next_offset < end:
            index.loaded = True
            self._start_from_snapshot(partition, index, end)
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
            if r.event_id not in own.owners and own.may_hold_older(r.event_id):
                self._read_prefix(partition, own, f"event id {r.event_id} may be an older event's")
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
                if event_id not in index.owners and index.may_hold_older(event_id):
                    self._read_prefix(other, index, f"event id {event_id} may be an older event's")
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
                    index = self._index[partition]
                    # Where this writer's next record lands if nothing else was written
                    # since its last commit (whose marker takes the one offset after
                    # it): checked on the broker's answer to the send below, instead
                    # of an offset lookup before planning.
                    expected = index.own_last + 2 if self._trusts_index(index, fresh) else None
                if expected is None and (index := self._caught_up(partition, fresh)) is None:
                    continue
                try:
                    records = plan(lambda name: _View(self, partition, index, name))
                except LedgerError:
                    if expected is None:
                        raise
                    records = None
                if expected is not None and not records:
                    # A refusal, or nothing to write (a retry's duplicates), decided on
                    # the unchecked index would reach the caller with no send to tell
                    # whether the index was stale: confirmed against the partition as
                    # it is, and planned again.
                    expected = None
                    if (index := self._caught_up(partition, fresh)) is None:
                        continue
                    records = plan(lambda name: _View(self, partition, index, name))
                if not records:
                    return []
                for r in records:
                    if self.partition_for(r.model) != partition:
                        raise InputError(f"model {r.model!r} does not live in partition {partition}")
                snapshot = self._snapshot_due(index, records)
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
                    if expected is not None and metadata[0].offset != expected:
                        # Something was written between our last commit and these
                        # records: the plan may miss it. Undone, caught up, planned again.
                        producer.abort_transaction()
                        lost = _Overtaken(f"offset {expected} of partition {partition} was written by another producer")
                        continue
                    if snapshot is not None:
                        # In the same transaction: committed or aborted with the events.
                        snapshot = self._send_snapshot(producer, partition, index, snapshot, records, metadata, until)
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
                if snapshot is not None:
                    index.snap_offset, index.snap_entries, index.snap_ids = snapshot.offset, snapshot.entries, snapshot.ids
                    index.recent_ids = []
                    index.written_at = snapshot.offset
                index.readable = self._await_markers(partition, index.own_last, until)
                if self._state_ready is None and index.next_offset - index.written_at >= kafka_state.EVERY:
                    self._state_topic_ready()  # the next append writes the snapshot
                if index.fold_after_commit and self._state_ready:
                    # A long history not folded yet (the first snapshot of a partition
                    # written without them): folded once here, outside the deadline;
                    # the next append writes the snapshot.
                    index.fold_after_commit = False
                    self._fold_committed(index)
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

    # ------------------------------------------------------------------ rule-state snapshots

    def _state_topic_ready(self) -> bool:
        """Create ``<topic>.state`` if missing (see :mod:`ledger.backends.kafka_state`);
        whether snapshots can be written. A principal not allowed to (ACLs), or a
        state topic of another shape, turns snapshots off with a warning: appends
        work as without them."""
        if self._state_ready is not None:
            return self._state_ready
        self._state_ready = False
        if not self.options.get("snapshots", 1):
            return False
        try:
            with self._admin_lock:
                if self.state_topic not in self._admin.list_topics():
                    try:
                        self._admin.create_topics(
                            {self.state_topic: {"num_partitions": self._partition_count,
                                                "replication_factor": self.replication,
                                                "configs": kafka_state.TOPIC_CONFIG}},
                            timeout_ms=self._timeout_ms, wait_for_metadata=True,
                        )
                    except kerrors.TopicAlreadyExistsError:
                        pass
                described = self._admin.describe_topics([self.state_topic])
            count = len(described[0]["partitions"]) if described else 0
        except (kerrors.KafkaError, OSError) as exc:
            log.warning("rule-state snapshots are off: cannot create or describe %r (%s)", self.state_topic, exc)
            return False
        if count != self._partition_count:
            log.warning(
                "rule-state snapshots are off: %r has %d partitions, %r has %d",
                self.state_topic, count, self.topic, self._partition_count,
            )
            return False
        self._state_ready = True
        return True

    def _latest_snapshot(self, partition: int) -> kafka_state.PartitionSnapshot | None:
        """The last committed record of the state topic's ``partition``, decoded."""
        if not self.options.get("snapshots", 1):
            return None
        tp = TopicPartition(self.state_topic, partition)
        try:
            with self._admin_lock:
                if self.state_topic not in self._admin.list_topics():
                    return None
                latest = self._admin.list_partition_offsets(
                    {tp: OffsetSpec.LATEST}, isolation_level=IsolationLevel.READ_COMMITTED, timeout_ms=self._timeout_ms)
                earliest = self._admin.list_partition_offsets({tp: OffsetSpec.EARLIEST}, timeout_ms=self._timeout_ms)
        except (kerrors.KafkaError, OSError) as exc:
            log.warning("partition %d: no rule-state snapshot read (%s); reading it from offset 0", partition, exc)
            return None
        end, begin = latest[tp].offset, earliest[tp].offset
        if self._consumer is None:
            self._consumer = self._new_consumer()
        # Each snapshot is one record and one commit marker (plus aborted attempts):
        # look back a few offsets, then further.
        start = max(begin, end - 8)
        while start < end:
            last = None
            for raw in self._fetch(self._consumer, tp, start, end):
                last = raw
            if last is not None:
                found = kafka_state.decode(last.value, self.topic, partition)
                if found is None:
                    log.warning(
                        "partition %d: the rule-state snapshot at %s offset %d is not one this "
                        "ledger wrote for %r; reading the partition from offset 0",
                        partition, self.state_topic, last.offset, self.topic,
                    )
                return found
            if start == begin:
                break
            start = max(begin, start - 2 * (end - start))
        return None

    def _start_from_snapshot(self, partition: int, index: _PartitionIndex, end: int) -> None:
        """Point a fresh ``index`` at the partition's latest snapshot, if it checks
        out: then only the records after it are read."""
        snapshot = self._latest_snapshot(partition)
        if snapshot is None or not snapshot.entries:
            return
        if snapshot.offset > end:
            log.warning(
                "partition %d: the rule-state snapshot covers offsets up to %d but the "
                "partition ends at %d; reading it from offset 0", partition, snapshot.offset, end,
            )
            return
        index.base = index.next_offset = index.snap_offset = index.written_at = snapshot.offset
        index.prefix_ids = index.snap_ids = snapshot.ids
        index.snap_entries = dict(snapshot.entries)
        for model, entry in snapshot.entries.items():
            index.streams[model] = _Stream(entry=entry)
        # The snapshot belongs to this partition only if the log still holds, where
        # it says, the last event it covers.
        newest = max(snapshot.entries, key=lambda m: snapshot.entries[m].offset)
        if not self._verify_head(partition, index, newest, index.streams[newest]):
            log.warning(
                "partition %d: the rule-state snapshot's last event (offset %d) is not what "
                "the log holds there; reading the partition from offset 0",
                partition, snapshot.entries[newest].offset,
            )
            _PartitionIndex.__init__(index, loaded=True)

    def _record_at(self, partition: int, offset: int):
        if self._consumer is None:
            self._consumer = self._new_consumer()
        for raw in self._fetch(self._consumer, TopicPartition(self.topic, partition), offset, offset + 1):
            return raw if raw.offset == offset else None
        return None

    def _verify_head(self, partition: int, index: _PartitionIndex, model: str, stream: _Stream) -> bool:
        """Whether the log holds ``stream.entry``'s head event at its offset; if so,
        it becomes the stream's first indexed record."""
        entry = stream.entry
        with self._kafka_errors(f"reading partition {partition}"):
            raw = self._record_at(partition, entry.offset)
        if raw is None:
            return False
        stored, event_id = self._stored(raw)
        if (
            stored.model != model
            or stored.hash != entry.hash
            or stored.recorded_hash not in (None, entry.hash)
            or stored.sequence != entry.sequence
        ):
            return False
        if stream.records and stream.records[0].sequence != entry.sequence + 1:
            return False  # the indexed tail does not continue that head
        stream.records.insert(0, stored)
        if event_id:
            stream.by_event_id.setdefault(event_id, stored)
            index.owners.setdefault(event_id, model)
        stream.verified = True
        return True

    def _read_prefix(self, partition: int, index: _PartitionIndex, why: str, trusted: bool = True) -> None:
        """Index the records below ``index.base`` too (the index then holds the
        whole partition, as without snapshots). ``trusted=False``: the snapshot did
        not check out, so the next one is folded from the whole partition."""
        if index.base is None:
            return
        (log.info if trusted else log.warning)(
            "partition %d: reading offsets 0..%d too (%s)", partition, index.base - 1, why
        )
        whole = _PartitionIndex(loaded=True)
        with self._kafka_errors(f"reading partition {partition}"):
            self._index_committed(partition, whole, index.base)
        for record, event_id in index.tail:
            whole.add(record, event_id)
        whole.next_offset, whole.own_first, whole.own_last = index.next_offset, index.own_first, index.own_last
        if trusted:
            whole.snap_offset, whole.snap_entries, whole.snap_ids = index.snap_offset, index.snap_entries, index.snap_ids
            whole.written_at = index.written_at
            whole.recent_ids = [event_id for _, event_id in index.tail if event_id]
        for name in _PartitionIndex.__dataclass_fields__:
            setattr(index, name, getattr(whole, name))

    def _fold_committed(self, index: _PartitionIndex) -> None:
        """Advance ``index.snap_*`` over the committed records indexed since
        ``snap_offset`` (a pure function of the committed prefix: kept whether or
        not a snapshot is then written)."""
        changed = {}
        for model, stream in index.streams.items():
            rs = stream.records
            i = len(rs)
            while i and rs[i - 1].position.offset >= index.snap_offset:
                i -= 1
            if i < len(rs):
                changed[model] = rs[i:]
        if index.snap_ids is None:
            ids = kafka_state.IdFilter()
            for event_id in index.owners:
                ids.add(event_id)
        else:
            ids = index.snap_ids.copy()
            for event_id in index.recent_ids:
                ids.add(event_id)
        index.snap_entries = kafka_state.advance(index.snap_entries, changed)
        index.snap_ids = ids
        index.snap_offset = index.next_offset
        index.recent_ids = []

    def _snapshot_due(self, index: _PartitionIndex, records: Sequence[NewRecord]) -> kafka_state.PartitionSnapshot | None:
        """If this append is to carry a new snapshot, the streams' entries and ids
        before it (folded now, before the transaction begins)."""
        if index.next_offset + len(records) - index.written_at < kafka_state.EVERY or not self._state_ready:
            # A state topic not looked at yet is created after this append commits
            # (_append): creating a topic must not eat an append's deadline.
            return None
        if index.next_offset - index.snap_offset > 4 * kafka_state.EVERY:
            index.fold_after_commit = True
            return None
        self._fold_committed(index)
        return kafka_state.PartitionSnapshot(self.topic, -1, index.snap_offset, index.snap_entries, index.snap_ids)

    def _send_snapshot(self, producer, partition, index, before, records, metadata, until):
        """Send the snapshot after this append's records (acknowledged at
        ``metadata``) into the open transaction; what to keep once committed."""
        stored = {}
        for r, meta in zip(records, metadata):
            stored.setdefault(r.model, []).append(StoredRecord(
                Position(partition, meta.offset), r.model, r.sequence, r.event_type,
                r.fingerprint, r.data, meta.timestamp, r.hash,
            ))
        ids = before.ids.copy()
        for r in records:
            ids.add(r.event_id)
        snapshot = kafka_state.PartitionSnapshot(
            self.topic, partition, metadata[-1].offset + 1, kafka_state.advance(before.entries, stored), ids
        )
        value = kafka_state.encode(snapshot)
        if len(value) > kafka_state.MAX_BYTES:
            log.warning(
                "a rule-state snapshot of partition %d is %d bytes, over %d: snapshots are off in this process",
                partition, len(value), kafka_state.MAX_BYTES,
            )
            self._state_ready = False
            return None
        producer.send(self.state_topic, value=value, key=str(partition).encode("ascii"), partition=partition).get(
            timeout=max(0.5, until - time.monotonic())
        )
        return snapshot

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
