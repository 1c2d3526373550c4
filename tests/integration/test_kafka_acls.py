"""Only the service writes the topic: scripts/kafka.sh's SASL mode with the
standard authorizer. A broker of the test's own (never the shared one)."""

from __future__ import annotations

import httpx
import pytest
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from ledger import samples
from ledger.client import Ledger
from ledger.errors import BackendError
from tests.integration.service_harness import Server, make_principals
from tests.integration.test_service import as_json
from tests.integration.test_service_broker_faults import PrivateBroker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOPIC = "acl-lifecycle"
USERS = {"ledger": "ledger-secret", "reader": "reader-secret", "intruder": "intruder-secret"}


@pytest.fixture
def broker(tmp_path, kafka_bootstrap):  # kafka_bootstrap: only to require Kafka's jars and Java
    private = PrivateBroker(
        tmp_path / "broker",
        LEDGER_KAFKA_SASL="1",
        LEDGER_KAFKA_TOPIC=TOPIC,
        LEDGER_KAFKA_USERS=",".join(f"{u}:{p}" for u, p in USERS.items()),
        LEDGER_KAFKA_WRITER="ledger",
        LEDGER_KAFKA_READERS="reader",
    )
    private.script("start")
    try:
        private.script("acls")
        yield private
    finally:
        private.script("stop")


def log_url(broker, user: str) -> str:
    return (
        f"kafka://{broker.bootstrap}/{TOPIC}?partitions=3&timeout_ms=5000&security_protocol=SASL_PLAINTEXT"
        f"&sasl_mechanism=PLAIN&sasl_plain_username={user}&sasl_plain_password={USERS[user]}"
    )


def test_only_the_service_principal_writes_the_topic(broker, tmp_path):
    tokens = make_principals(tmp_path / "principals.toml")
    with Server(log_url(broker, "ledger"), tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'v.db'}") as server:
        answer = httpx.post(
            f"{server.url}/v1/events", json=as_json(samples.snapshot("churn")), headers={"Authorization": f"Bearer {tokens['etl']}"}
        )
        assert answer.status_code == 201, answer.text
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens['reader']}"}) as http:
            assert [m["model"] for m in http.get("/v1/models").json()["models"]] == ["churn"]

    # A reader may read the log, and may not write it.
    with Ledger.open(log_url(broker, "reader")) as ledger:
        assert [e.event_type for e in ledger.events()] == ["DataSnapshotted"]
        with pytest.raises(BackendError, match="AuthorizationFailed"):
            ledger.emit(samples.snapshot("churn", "s2"))

    # Another principal's produce is refused by the broker itself.
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
        sasl_plain_username="intruder", sasl_plain_password=USERS["intruder"], max_block_ms=10_000,
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(TOPIC, key=b"churn", value=b"a forged record").get(timeout=15)
    finally:
        producer.close(timeout=1)

    with Ledger.open(log_url(broker, "ledger")) as ledger:
        assert len(list(ledger.events())) == 1
        assert ledger.verify().ok


def test_only_the_writer_writes_rule_state_snapshots(broker, monkeypatch):
    from kafka import KafkaConsumer, TopicPartition

    from ledger.backends import kafka_state

    monkeypatch.setattr(kafka_state, "EVERY", 1)  # the state topic after the first append, a snapshot with the next
    with Ledger.open(log_url(broker, "ledger")) as ledger:
        ledger.emit(samples.snapshot("churn"))
        accepted = ledger.emit(samples.snapshot("churn", "s2"))
    sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, sasl_plain_username="ledger",
                             sasl_plain_password=USERS["ledger"], isolation_level="read_committed",
                             enable_auto_commit=False, group_id=None, **sasl)
    try:
        tp = TopicPartition(f"{TOPIC}.state", accepted.position.partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        (record,) = consumer.poll(timeout_ms=10_000).get(tp, [])
        assert kafka_state.decode(record.value, TOPIC, tp.partition).entries["churn"].hash == accepted.hash
    finally:
        consumer.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, sasl_plain_username="intruder",
                             sasl_plain_password=USERS["intruder"], max_block_ms=10_000, **sasl)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(f"{TOPIC}.state", key=b"0", value=b"a forged snapshot").get(timeout=15)
    finally:
        producer.close(timeout=1)
