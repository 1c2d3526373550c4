"""What is specific to the Kafka log, on a real broker: the topic it creates, what
each record carries for other Kafka clients, foreign records, an unreachable broker."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from ledger import codec, samples
from ledger.backends.kafka import KafkaLog
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import BackendError, DecodeError

pytestmark = pytest.mark.kafka


@pytest.fixture
def log(kafka_log_url):
    log = open_log(kafka_log_url)
    yield log
    log.close()


def test_topic_keeps_events_forever_and_is_reused(kafka_bootstrap, kafka_topic, log):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        wanted = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka_topic, configs=dict.fromkeys(wanted))],
            config_filter="all",
        )["topic"][kafka_topic]
        assert {name: found[name]["value"] for name in wanted} == wanted
        assert len(admin.describe_topics([kafka_topic])[0]["partitions"]) == 3
    finally:
        admin.close()

    Ledger(log).emit(samples.snapshot("churn"))
    # Opening the same topic again, even asking for another partition count, reuses it.
    with KafkaLog([kafka_bootstrap], kafka_topic, partitions=5) as again:
        assert again.partitions() == [0, 1, 2]
        assert [r.model for r in again.read()] == ["churn"]


def test_records_carry_key_headers_and_the_exact_bytes(kafka_bootstrap, kafka_topic, log):
    accepted = Ledger(log).emit(samples.snapshot("churn"))

    (record,) = list(log.read())

    assert record.model == "churn"
    assert codec.decode(record.data) == accepted.event
    assert record.event_type == "DataSnapshotted"
    assert record.fingerprint == record.data[2:10]
    assert record.recorded_hash == accepted.hash == record.hash
    assert record.sequence == 1
    # Any Kafka client keying by model name lands in the same partition.
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        sent = producer.send(kafka_topic, key=b"churn", value=b"not an event").get(timeout=30)
    finally:
        producer.close(timeout=5)
    assert sent.partition == record.position.partition == log.partition_for("churn")


def test_foreign_records_are_read_raw_and_refuse_new_events_on_their_stream(kafka_bootstrap, kafka_topic, log):
    ledger = Ledger(log)
    ledger.emit(samples.snapshot("churn"))
    ledger.emit(samples.snapshot("fraud"))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(kafka_topic, key=b"churn", value=b"\xc3\x01garbage!").get(timeout=30)
        producer.send(kafka_topic, key=None, value=b"{}", partition=0).get(timeout=30)
    finally:
        producer.close(timeout=5)

    records = list(log.read())

    assert sorted(r.data for r in records if r.event_type is None) == [b"{}", b"\xc3\x01garbage!"]
    assert [r.model for r in records if r.data == b"{}"] == [None]
    report = ledger.verify()
    assert not report.ok
    assert {p.kind for p in report.problems} == {"undecodable"}
    with pytest.raises(DecodeError):
        ledger.emit(samples.trained("churn"))
    assert ledger.emit(samples.trained("fraud")).event.sequence == 2


def test_a_replayed_copy_produced_to_the_topic_refuses_new_events_instead_of_forking_the_chain(kafka_bootstrap, kafka_topic, log):
    # Anyone allowed to produce to the topic can re-send an old record, headers and
    # all; the stream must not then accept a second #3 linked to the copy.
    ledger = Ledger(log)
    for draft in samples.lifecycle("churn")[:4]:
        ledger.emit(draft)
    trained = next(r for r in log.read(model="churn") if r.sequence == 2)
    headers = [("event_type", b"ModelTrained"), ("fingerprint", trained.fingerprint),
               ("hash", trained.hash.encode()), ("sequence", b"2")]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(kafka_topic, key=b"churn", value=trained.data, headers=headers,
                      partition=trained.position.partition).get(timeout=30)
    finally:
        producer.close(timeout=5)
    before = [r.data for r in log.read(model="churn")]

    with Ledger(open_log(log.url)) as cold:
        for writer in (ledger, cold):  # a warm and a cold writer state alike
            with pytest.raises(DecodeError, match=r"churn.*inserted.*ledger verify"):
                writer.emit(samples.evaluated("churn"))
            with pytest.raises(DecodeError, match="inserted"):
                writer.emit(samples.deployed("churn"))

    assert [r.data for r in log.read(model="churn")] == before
    assert [p.kind for p in ledger.verify("churn").problems] == ["inserted"]


def test_an_event_over_the_topics_own_size_limit_is_bad_input_not_retried(kafka_bootstrap, kafka_topic):
    from kafka.admin import NewTopic

    from ledger.errors import InputError

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(kafka_topic, 1, 1, topic_configs={"max.message.bytes": "20000"})])
    finally:
        admin.close()
    with KafkaLog([kafka_bootstrap], kafka_topic, partitions=1) as log:
        ledger = Ledger(log)
        ledger.emit(samples.snapshot("churn"))
        bulky = samples.snapshot("churn", "s2").model_copy(update={"uri": "file:///" + "x" * 50_000})
        with pytest.raises(InputError, match="too large"):
            ledger.emit(bulky)
        assert len(list(log.read())) == 1
        assert ledger.emit(samples.snapshot("churn", "s3")).event.sequence == 2


def test_a_record_produced_to_another_partition_than_its_key_is_named_misplaced(kafka_bootstrap, kafka_topic, log):
    # The writer never reads it (a key's stream lives in one partition), so the
    # stream stays intact and open; verify names the stray record as what it is.
    ledger = Ledger(log)
    for draft in samples.lifecycle("churn"):
        ledger.emit(draft)
    last = list(log.read(model="churn"))[-1]
    elsewhere = (last.position.partition + 1) % len(log.partitions())
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        stray = producer.send(kafka_topic, key=b"churn", value=last.data, partition=elsewhere).get(timeout=30)
    finally:
        producer.close(timeout=5)

    report = ledger.verify()

    assert [(p.kind, p.position) for p in report.problems] == [("misplaced", f"{elsewhere}:{stray.offset}")]
    assert report.streams["churn"].problem is None and report.streams["churn"].head_sequence == 5
    assert ledger.verify("churn").ok
    assert ledger.emit(samples.deployed("churn", environment="staging")).event.sequence == 6


def test_unreachable_broker_is_a_backend_error():
    with pytest.raises(BackendError, match="cannot reach Kafka at 127.0.0.1:9"):
        open_log("kafka://127.0.0.1:9/ledger.lifecycle?timeout_ms=2000")


def _open_transaction(bootstrap, topic, transactional_id, value):
    """A producer that sends ``value`` inside a transaction and never finishes it."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id, retry_backoff_ms=20)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, key=b"churn", value=value, partition=0)
    producer.flush()
    return producer


def test_a_writer_that_died_mid_transaction_does_not_block_the_next(kafka_bootstrap, kafka_topic):
    with KafkaLog([kafka_bootstrap], kafka_topic, partitions=1) as log:
        ledger = Ledger(log)
        ledger.emit(samples.snapshot("churn"))
        dead = _open_transaction(kafka_bootstrap, kafka_topic, f"ledger-writer.{kafka_topic}.0", b"half-written")
        try:
            accepted = ledger.emit(samples.snapshot("churn", "s2"))
        finally:
            dead.close(timeout=0)

        assert accepted.event.sequence == 2
        assert b"half-written" not in [r.data for r in log.read()]
        assert ledger.verify().ok


@pytest.mark.slow  # the writer gives a foreign transaction ~5 s to complete before refusing
def test_a_foreign_open_transaction_refuses_appends_instead_of_hiding_events(kafka_bootstrap, kafka_topic):
    with KafkaLog([kafka_bootstrap], kafka_topic, partitions=1) as log:
        ledger = Ledger(log)
        ledger.emit(samples.snapshot("churn"))
        foreign = _open_transaction(kafka_bootstrap, kafka_topic, f"someone-else-{kafka_topic}", b"foreign")
        try:
            with pytest.raises(BackendError, match="transaction open since offset"):
                ledger.emit(samples.snapshot("churn", "s2"))
            foreign.abort_transaction()
        finally:
            foreign.close(timeout=5)

        assert ledger.emit(samples.snapshot("churn", "s2")).event.sequence == 2
