"""Rule-state snapshots on Kafka (``<topic>.state``), on the real broker: a fresh
writer reads only the tail of its partition, a snapshot that does not match the
log is passed over, an aborted append leaves none, and answers (duplicates,
refusals) are those of a writer that read everything."""

from __future__ import annotations

import dataclasses
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ledger import rule_snapshots, samples
from ledger.append import Appender
from ledger.backends import kafka_state
from ledger.backends.kafka import KafkaLog
from ledger.client import Ledger
from ledger.errors import RuleViolation
from ledger.events import DriftDetected
from ledger.service.writer import PartitionWriter, Request

pytestmark = pytest.mark.kafka

EVERY = 40


@pytest.fixture(autouse=True)
def small_snapshots(monkeypatch):
    # A snapshot every 40 offsets, so a test needs a few hundred events, not thousands.
    monkeypatch.setattr(kafka_state, "EVERY", EVERY)


def open_log(kafka_bootstrap, kafka_topic) -> KafkaLog:
    return KafkaLog([kafka_bootstrap], kafka_topic, partitions=3)


def drift(model: str, i: int = 0) -> DriftDetected:
    return DriftDetected(
        model=model, version=1, actor="monitor", environment="production", metric="psi",
        value=0.1 + i / 10_000, threshold=0.2, reference_snapshot_id="s1",
    )


def deployed_life(model: str) -> list:
    return [
        samples.snapshot(model, "s1"),
        samples.trained(model, snapshots=("s1",)),
        samples.evaluated(model),
        samples.approved(model),
        samples.deployed(model),
    ]


def same_partition_models(log: KafkaLog, count: int) -> list[str]:
    names = [f"model-{i}" for i in range(200)]
    partition = log.partition_for(names[0])
    return [n for n in names if log.partition_for(n) == partition][:count]


def grow(ledger: Ledger, model: str, events: int) -> None:
    for start in range(0, events, 25):
        ledger.emit_many([drift(model, start + j) for j in range(min(25, events - start))])


def state_records(kafka_bootstrap, kafka_topic, partition, isolation="read_committed") -> list:
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level=isolation,
                             enable_auto_commit=False, group_id=None)
    try:
        tp = TopicPartition(kafka_state.state_topic(kafka_topic), partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        found, idle = [], time.monotonic()
        while time.monotonic() - idle < 2:
            batch = consumer.poll(timeout_ms=200).get(tp, [])
            if batch:
                found.extend(batch)
                idle = time.monotonic()
        return found
    finally:
        consumer.close()


def test_a_fresh_writer_after_a_snapshot_reads_only_the_tail_and_decides_as_a_full_fold(kafka_bootstrap, kafka_topic):
    with open_log(kafka_bootstrap, kafka_topic) as log:
        busy, quiet, pending = same_partition_models(log, 3)
        partition = log.partition_for(busy)
        ledger = Ledger(log)
        for model in (busy, quiet):
            for draft in deployed_life(model):
                ledger.emit(draft)
        ledger.emit(samples.snapshot(pending, "s1"))
        ledger.emit(samples.trained(pending, snapshots=("s1",)))
        grow(ledger, busy, 300)
        total = log.end_offsets()[partition]
    assert state_records(kafka_bootstrap, kafka_topic, partition), "no snapshot was written"

    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        ledger = Ledger(fresh)
        accepted = ledger.emit(drift(busy, 999))
        # The head event of the snapshot plus the tail after it: at most about EVERY
        # records, against the whole partition without a snapshot.
        read = fresh.records_fetched[partition]
        assert read <= EVERY + 10 < total
        assert accepted.event.sequence == 306
        # Streams the snapshot holds keep their rules: an unapproved version is not
        # deployed, a deployed model's next version number is 2.
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(samples.deployed(pending))
        assert refused.value.rule == "deploy-only-approved"
        with pytest.raises(RuleViolation) as again:
            ledger.emit(samples.trained(quiet, snapshots=("s1",)))
        assert again.value.rule == "version-never-reused"
        assert ledger.emit(samples.evaluated(pending)).event.sequence == 3
        assert fresh.records_fetched[partition] - read <= 3  # one head event per stream used
    with open_log(kafka_bootstrap, kafka_topic) as check:
        assert [r.sequence for r in check.read(model=busy)] == list(range(1, 307))


def forge(kafka_bootstrap, kafka_topic, partition, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(kafka_state.state_topic(kafka_topic), key=str(partition).encode(), value=value,
                      partition=partition).get(timeout=30)
    finally:
        producer.close()


@pytest.mark.parametrize("damage", ["stream-head", "last-head", "undecodable", "other-topic"])
def test_a_snapshot_that_does_not_match_the_log_is_passed_over_for_the_full_fold(kafka_bootstrap, kafka_topic, damage, tmp_path):
    with open_log(kafka_bootstrap, kafka_topic) as log:
        model, filler = same_partition_models(log, 2)
        partition = log.partition_for(model)
        ledger = Ledger(log)
        ledger.emit(samples.snapshot(model, "s1"))
        ledger.emit(samples.trained(model, snapshots=("s1",)))
        for draft in deployed_life(filler):
            ledger.emit(draft)
        grow(ledger, filler, 100)
        total = log.end_offsets()[partition]
    (latest,) = state_records(kafka_bootstrap, kafka_topic, partition)[-1:]
    real = kafka_state.decode(latest.value, kafka_topic, partition)
    assert real is not None and model in real.entries
    # A snapshot saying version 1 was evaluated and approved, at the wrong head.
    entry = real.entries[model]
    approved = Ledger.open(f"sqlite:///{tmp_path / 'lie.db'}")
    try:
        for draft in [samples.snapshot(model, "s1"), samples.trained(model, snapshots=("s1",)),
                      samples.evaluated(model), samples.approved(model)]:
            approved.emit(draft)
        lying_state = approved.state(model)
    finally:
        approved.close()
    if damage == "stream-head":
        # Found when the stream's state is about to be used (the newest head is fine).
        lie = dataclasses.replace(lying_state, sequence=entry.sequence, last_hash="0" * 64)
        real.entries[model] = kafka_state.Entry(entry.sequence, "0" * 64, entry.offset, rule_snapshots.dumps(lie))
        forged = kafka_state.encode(real)
    elif damage == "last-head":
        # Found when the snapshot is loaded: the newest head it names is not in the
        # log. (The lie about ``model`` is bound to its true head: only that check
        # stands between it and the writer.)
        lie = dataclasses.replace(lying_state, sequence=entry.sequence, last_hash=entry.hash)
        real.entries[model] = kafka_state.Entry(entry.sequence, entry.hash, entry.offset, rule_snapshots.dumps(lie))
        last = real.entries[filler]
        real.entries[filler] = kafka_state.Entry(last.sequence, "0" * 64, last.offset, last.state)
        forged = kafka_state.encode(real)
    elif damage == "undecodable":
        forged = b"\x00 not a snapshot"
    else:
        real.topic = "another.topic"
        forged = kafka_state.encode(real)
    forge(kafka_bootstrap, kafka_topic, partition, forged)

    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        ledger = Ledger(fresh)
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(samples.deployed(model))
        assert refused.value.rule == "deploy-only-approved"
        assert fresh.records_fetched[partition] >= total - 60  # the whole partition was read
        assert ledger.emit(drift(filler, 5000)).event.sequence == 106
        assert ledger.emit(samples.evaluated(model)).event.sequence == 3


def test_a_genuine_older_snapshot_produced_again_gives_the_same_state(kafka_bootstrap, kafka_topic):
    with open_log(kafka_bootstrap, kafka_topic) as log:
        (model,) = same_partition_models(log, 1)
        partition = log.partition_for(model)
        ledger = Ledger(log)
        for draft in deployed_life(model):
            ledger.emit(draft)
        grow(ledger, model, 200)
    first = state_records(kafka_bootstrap, kafka_topic, partition)[0]
    forge(kafka_bootstrap, kafka_topic, partition, first.value)
    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        assert Ledger(fresh).emit(drift(model, 999)).event.sequence == 206


def test_an_aborted_append_leaves_no_snapshot(kafka_bootstrap, kafka_topic):
    with open_log(kafka_bootstrap, kafka_topic) as log:
        (model,) = same_partition_models(log, 1)
        other = next(f"other-{i}" for i in range(100) if log.partition_for(f"other-{i}") != log.partition_for(model))
        partition = log.partition_for(model)
        ledger = Ledger(log)
        taken = ledger.emit(samples.snapshot(other, "s1")).event.event_id
        ledger.emit(samples.snapshot(model, "s1"))
        batch = [drift(model, i) for i in range(EVERY + 5)]
        batch[-1] = batch[-1].model_copy(update={"event_id": taken})
        # Version 1 does not exist: build it first so the drift events are valid.
        ledger.emit_many([samples.trained(model, snapshots=("s1",)), samples.evaluated(model),
                          samples.approved(model), samples.deployed(model)])
        grow(ledger, model, 2 * EVERY)
        committed = state_records(kafka_bootstrap, kafka_topic, partition)
        assert committed
        # The batch is large enough to carry a snapshot; its last event id is another
        # model's (on another partition), found only after the records were sent.
        with pytest.raises(RuleViolation) as refused:
            ledger.emit_many(batch)
        assert refused.value.rule == "event-id-unique"
    assert len(state_records(kafka_bootstrap, kafka_topic, partition)) == len(committed)
    # It was sent, in the transaction that was aborted.
    assert len(state_records(kafka_bootstrap, kafka_topic, partition, "read_uncommitted")) == len(committed) + 1
    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        assert [r.sequence for r in fresh.read(model=model)] == list(range(1, 2 * EVERY + 6))
        assert Ledger(fresh).emit(drift(model)).event.sequence == 2 * EVERY + 6


def test_an_old_event_id_retried_after_a_start_from_a_snapshot_is_still_a_duplicate(kafka_bootstrap, kafka_topic):
    with open_log(kafka_bootstrap, kafka_topic) as log:
        model, neighbour = same_partition_models(log, 2)
        partition = log.partition_for(model)
        ledger = Ledger(log)
        for draft in deployed_life(model):
            ledger.emit(draft)
        old = drift(model, 1)
        first = ledger.emit(old)
        grow(ledger, model, 200)

    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        ledger = Ledger(fresh)
        ledger.emit(drift(model, 2))  # a new id: the filter says so, the tail is enough
        tail_only = fresh.records_fetched[partition]
        assert tail_only <= EVERY + 10
        again = ledger.emit(old)
        assert again.duplicate and again.event.sequence == first.event.sequence == 6
        assert again.hash == first.hash
        # The old id on another model of the partition: refused, as without snapshots.
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(samples.snapshot(neighbour, "s1").model_copy(update={"event_id": old.event_id}))
        assert refused.value.rule == "event-id-unique"
        assert fresh.records_fetched[partition] > tail_only + 100  # the prefix was read for it


def test_the_service_writer_starts_from_the_snapshot(kafka_bootstrap, kafka_topic):
    with open_log(kafka_bootstrap, kafka_topic) as log:
        (model,) = same_partition_models(log, 1)
        partition = log.partition_for(model)
        ledger = Ledger(log)
        for draft in deployed_life(model):
            ledger.emit(draft)
        grow(ledger, model, 300)
        total = log.end_offsets()[partition]

    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        writer = PartitionWriter(fresh, Appender(fresh), partition)
        writer.start()
        try:
            assert writer.ready.wait(60)
            assert fresh.records_fetched[partition] <= EVERY + 10 < total
            request = Request(model, [drift(model, 999)], None, time.monotonic() + 30)
            writer.submit(request)
            (accepted,) = request.future.result(timeout=60)
            assert accepted.event.sequence == 306
            retrained = Request(model, [samples.trained(model, snapshots=("s1",))], None, time.monotonic() + 30)
            writer.submit(retrained)
            assert retrained.future.exception(timeout=60).rule == "version-never-reused"
        finally:
            writer.stop()


def test_a_partition_written_without_snapshots_gets_one(kafka_bootstrap, kafka_topic):
    with KafkaLog([kafka_bootstrap], kafka_topic, partitions=3, snapshots=0) as before:
        (model,) = same_partition_models(before, 1)
        partition = before.partition_for(model)
        ledger = Ledger(before)
        for draft in deployed_life(model):
            ledger.emit(draft)
        grow(ledger, model, 300)
    assert state_records(kafka_bootstrap, kafka_topic, partition) == []

    with open_log(kafka_bootstrap, kafka_topic) as writer:
        ledger = Ledger(writer)
        # The first append creates the state topic, the next folds the long history
        # once it has committed, the third carries the snapshot.
        for i in range(3):
            ledger.emit(drift(model, 1000 + i))
    assert len(state_records(kafka_bootstrap, kafka_topic, partition)) == 1

    with open_log(kafka_bootstrap, kafka_topic) as fresh:
        assert Ledger(fresh).emit(drift(model, 2000)).event.sequence == 309
        assert fresh.records_fetched[partition] <= 5
