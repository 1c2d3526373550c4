"""The projector on a real Kafka topic of three partitions: positions per
partition, resuming, rebuild equal to incremental, and foreign or damaged messages
produced straight to the topic."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer
from projection_scenario import play

from ledger.cli import main
from ledger.codec import MARKER
from ledger.config import open_log
from projections import db, queries
from projections.runner import Runner, project
from projections.synthetic import populate

pytestmark = pytest.mark.kafka


@pytest.fixture
def log(kafka_log_url):
    log = open_log(kafka_log_url)
    yield log
    log.close()


def _last_offsets(log) -> dict[int, int]:
    last: dict[int, int] = {}
    for record in log.read():
        last[record.position.partition] = record.position.offset
    return last


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def test_resumes_per_partition(log, engine):
    populate(log, models=9, rounds=2, seed=1)
    assert len({log.partition_for(f"model-{i:04d}") for i in range(9)}) == 3
    first = Runner(engine, batch_size=16).run(log)
    assert first.records == len(list(log.read()))
    expected = _last_offsets(log)
    assert Runner(engine).position() == expected
    assert Runner(engine).run(log).records == 0

    # New events for one model: only its partition moves.
    moved = log.partition_for("late-0000")
    populate(log, models=1, rounds=1, seed=2, prefix="late")
    again = Runner(engine).run(log)
    now = _last_offsets(log)
    assert again.records == len([r for r in log.read() if r.model == "late-0000"])
    assert set(again.positions) == {moved}
    assert Runner(engine).position() == now
    assert {p: o for p, o in now.items() if p != moved} == {p: o for p, o in expected.items() if p != moved}
    assert len(queries.audit(engine)) == len(list(log.read()))


def test_rebuild_equals_incremental(log, engine, new_db_url, open_engine):
    for seed, batch_size in ((1, 5), (2, 64)):
        populate(log, models=6, rounds=2, seed=seed, prefix=f"m{seed}")
        Runner(engine, batch_size=batch_size).run(log)
    rebuilt = open_engine(new_db_url())
    project(log, rebuilt, rebuild=True, batch_size=1000)
    assert db.dump(rebuilt) == db.dump(engine)


def test_scripted_history_on_kafka_matches_the_embedded_log(log, engine, tmp_path, open_engine):
    play(log)
    project(log, engine)
    deployed = {(d["model"], d["environment"]): d["version"] for d in queries.deployments(engine)}
    assert deployed == {("fraud", "production"): 2}
    assert {r["chain"] for r in queries.audit(engine)} == {"ok"}


def test_foreign_and_damaged_messages_are_quarantined(log, kafka_bootstrap, kafka_topic, engine):
    script = play(log)
    records = list(log.read())
    evaluation = next(r for r in records if r.position == script.positions["fraud v2 evaluated"])
    churn_snapshot = next(r for r in records if r.position == script.positions["churn s1"])
    _produce(
        kafka_bootstrap,
        kafka_topic,
        [
            (None, b'{"not": "avro"}'),  # no key
            (b"ghost", MARKER + bytes.fromhex("fedcba9876543210") + b"\x00"),  # unknown fingerprint
            (b"ghost", churn_snapshot.data),  # a real event under another model's key
            (b"fraud", evaluation.data),  # a replayed copy of an event of fraud
        ],
    )
    report = project(log, engine)
    quarantined = queries.quarantined(engine)
    reasons = sorted(q["reason"] for q in quarantined)
    assert len(reasons) == 3
    assert any("not Avro single-object encoding" in r or "no model key" in r for r in reasons)
    assert any("unknown writer schema fingerprint fedcba9876543210" in r for r in reasons)
    assert any("names model 'ghost' but the event is for 'churn'" in r for r in reasons)
    assert report.unreadable == 3
    positions = {q["position"] for q in quarantined}
    assert {r["position"] for r in queries.audit(engine, event_type="unreadable")} == positions

    # The replayed evaluation is in the audit trail, flagged, but not counted twice.
    copies = [r for r in queries.audit(engine, model="fraud", event_type="ModelEvaluated") if r["hash"] == evaluation.hash]
    assert [c["chain"] for c in copies] == ["ok", "broken"]
    [v2] = [v for v in queries.model_versions(engine, "fraud") if v["version"] == 2]
    assert (v2["evaluations"], v2["status"]) == (1, "deployed")

    verified = CliRunner().invoke(main, ["--log", log.url, "verify"])
    assert verified.exit_code == 1
    for position in positions:
        assert f"at {position}" in verified.output


def test_follow_applies_events_as_they_arrive(log, engine):
    play(log)
    stop = threading.Event()
    batches = []
    follower = threading.Thread(
        target=lambda: Runner(engine).follow(log, poll_interval=0.05, on_batch=batches.append, should_stop=stop.is_set)
    )
    follower.start()
    try:
        _until(lambda: Runner(engine).position() == _last_offsets(log))
        populate(log, models=3, rounds=1, seed=4, prefix="later")
        _until(lambda: Runner(engine).position() == _last_offsets(log))
    finally:
        stop.set()
        follower.join(timeout=60)
    assert not follower.is_alive()
    assert {m["model"] for m in queries.list_models(engine)} >= {"later-0000", "later-0001", "later-0002"}
    assert sum(b.records for b in batches) == len(list(log.read()))


def _until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the follower did not catch up"
        time.sleep(0.1)


def test_two_events_sharing_an_event_id_are_both_in_every_view(log, kafka_bootstrap, kafka_topic, engine):
    # The writer refuses a reused event id (test_log_contract), but anyone allowed
    # to produce to the topic can still write one: a well-formed, well-chained
    # ModelTrained of "fraud" carrying the event id of churn's ModelTrained. No view
    # keyed by event id may fold the two into one.
    from ledger import codec, samples
    from ledger.client import Ledger

    ledger = Ledger(log)
    ledger.emit(samples.snapshot("churn", "s1"))
    churn = ledger.emit(samples.trained("churn", 1)).event
    fraud_snapshot = ledger.emit(samples.snapshot("fraud", "s1"))
    assert log.partition_for("churn") != log.partition_for("fraud")
    copy = samples.trained("fraud", 1).model_copy(
        update={"event_id": churn.event_id, "sequence": 2, "prev_hash": fraud_snapshot.hash, "recorded_at": churn.recorded_at}
    )
    _produce(kafka_bootstrap, kafka_topic, [(b"fraud", codec.encode(copy).data)])

    project(log, engine)

    trail = [r for r in queries.audit(engine) if r["event_id"] == str(churn.event_id)]
    assert sorted((r["model"], r["event_type"], r["chain"]) for r in trail) == [
        ("churn", "ModelTrained", "ok"),
        ("fraud", "ModelTrained", "ok"),
    ]
    for model in ("churn", "fraud"):
        assert [v["version"] for v in queries.model_versions(engine, model)] == [1]
        upstream = {n["node_id"] for n in queries.lineage(engine, f"version:{model}@1")["nodes"]}
        assert f"run:{model}/{churn.event_id}" in upstream, upstream
        assert f"snapshot:{model}/s1" in upstream, upstream
