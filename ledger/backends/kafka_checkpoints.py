"""Signed checkpoints of a Kafka log, on their own topic ``<topic>.checkpoints``.

One partition (checkpoints of every partition of the log, keyed by origin, in the
order they were signed), ``retention.ms=-1``, ``retention.bytes=-1``,
``cleanup.policy=delete``: like the events, checkpoints are never deleted nor
compacted away (compaction by origin would keep only the latest, and an
auditor may hold any earlier one). The value is the signed note's exact text.
"""

from __future__ import annotations

import time

import kafka.errors as kerrors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from ledger.backends.kafka import KafkaLog
from ledger.checkpoint_store import CheckpointStore, log
from ledger.errors import BackendError
from ledger.notes import NoteError, SignedCheckpoint


class KafkaCheckpoints(CheckpointStore):
    def __init__(self, log_: KafkaLog):
        self.log = log_
        self.topic = f"{log_.topic}.checkpoints"
        self._producer: KafkaProducer | None = None
        self._ready = False

    def _ensure_topic(self) -> None:
        if self._ready:
            return
        config = self.log._client_config()
        with self.log._kafka_errors("creating the checkpoint topic"):
            admin = KafkaAdminClient(**config)
            try:
                if self.topic not in admin.list_topics():
                    try:
                        admin.create_topics(
                            {
                                self.topic: {
                                    "num_partitions": 1,
                                    "replication_factor": self.log.replication,
                                    "configs": {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
                                }
                            },
                            timeout_ms=self.log._timeout_ms,
                            wait_for_metadata=True,
                        )
                    except kerrors.TopicAlreadyExistsError:
                        pass
            finally:
                admin.close()
        self._ready = True

    def add(self, signed: SignedCheckpoint) -> None:
        self._ensure_topic()
        with self.log._kafka_errors("storing a checkpoint"):
            if self._producer is None:
                self._producer = KafkaProducer(**self.log._client_config(), acks="all", linger_ms=0)
            future = self._producer.send(
                self.topic, key=signed.checkpoint.origin.encode("utf-8"), value=str(signed).encode("utf-8"), partition=0
            )
            future.get(timeout=self.log._timeout_ms / 1000)

    def all(self) -> list[SignedCheckpoint]:
        with self.log._kafka_errors("reading the checkpoint topic"):
            consumer = KafkaConsumer(**self.log._client_config(), group_id=None, enable_auto_commit=False)
            try:
                if self.topic not in consumer.topics():
                    return []
                tp = TopicPartition(self.topic, 0)
                consumer.assign([tp])
                end = consumer.end_offsets([tp])[tp]
                consumer.seek_to_beginning(tp)
                found: list[SignedCheckpoint] = []
                deadline = time.monotonic() + self.log._timeout_ms / 1000
                while consumer.position(tp) < end:
                    if time.monotonic() > deadline:
                        raise BackendError(f"reading {self.topic!r} made no progress for {self.log._timeout_ms} ms")
                    for record in consumer.poll(timeout_ms=100).get(tp, ()):
                        try:
                            found.append(SignedCheckpoint.parse(record.value or b""))
                        except NoteError as exc:
                            log.warning("skipping a malformed checkpoint at %s-0@%d: %s", self.topic, record.offset, exc)
                        deadline = time.monotonic() + self.log._timeout_ms / 1000
                return found
            finally:
                consumer.close(autocommit=False)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=2)
            self._producer = None
