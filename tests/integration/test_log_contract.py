"""One contract, every log backend: what a client of the ledger relies on.

``LogContract`` holds the tests; each subclass supplies a ``log`` — the embedded
SQLite file, or a fresh topic on a real Kafka broker. Everything goes through
:class:`ledger.client.Ledger` (the append path users call), and what is checked is
what the log gives back when read.
"""

from __future__ import annotations

import itertools

import pytest

from ledger import codec, samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import ConflictError, InputError, RuleViolation
from ledger.events import GENESIS_HASH, ModelDeployed


def snapshot_of(log, model=None):
    """What a reader sees: every record's position and exact bytes."""
    return [(r.position, r.data) for r in log.read(model=model)]


class LogContract:
    @pytest.fixture
    def log(self):
        raise NotImplementedError("a backend's test class provides the log")

    @pytest.fixture
    def ledger(self, log):
        return Ledger(log)

    # --- accepted means durable, exactly once, in order ------------------------

    def test_lifecycle_is_accepted_with_sequences_and_a_hash_chain(self, ledger):
        accepted = [ledger.emit(draft) for draft in samples.lifecycle("churn")]

        assert [a.event.sequence for a in accepted] == [1, 2, 3, 4, 5]
        assert accepted[0].event.prev_hash == GENESIS_HASH
        for previous, current in itertools.pairwise(accepted):
            assert current.event.prev_hash == previous.hash
        assert all(not a.duplicate for a in accepted)

    def test_stored_bytes_are_what_was_accepted_exactly_once_in_order(self, ledger, log):
        accepted = [ledger.emit(draft) for draft in samples.lifecycle("churn")]

        stored = list(log.read(model="churn"))

        assert [r.position for r in stored] == [a.position for a in accepted]
        assert [r.hash for r in stored] == [a.hash for a in accepted]
        assert [r.recorded_hash for r in stored] == [a.hash for a in accepted]
        assert [codec.decode(r.data) for r in stored] == [a.event for a in accepted]
        assert [r.event_type for r in stored] == [a.event.event_type for a in accepted]

    # --- nothing invalid is accepted ----------------------------------------------

    @pytest.mark.parametrize(
        ("history", "bad", "rule"),
        [
            pytest.param(
                [samples.snapshot("churn"), samples.trained("churn"), samples.evaluated("churn")],
                samples.deployed("churn"),
                "deploy-only-approved",
                id="deploy-unapproved",
            ),
            pytest.param(
                [samples.snapshot("churn"), samples.trained("churn", actor="alice"), samples.evaluated("churn")],
                samples.approved("churn", actor="alice"),
                "four-eyes",
                id="approval-by-trainer",
            ),
        ],
    )
    def test_rejected_event_leaves_the_log_unchanged(self, ledger, log, history, bad, rule):
        for draft in history:
            ledger.emit(draft)
        before, ends = snapshot_of(log), log.end_offsets()

        with pytest.raises(RuleViolation) as refused:
            ledger.emit(bad)

        assert refused.value.rule == rule
        assert snapshot_of(log) == before
        assert log.end_offsets() == ends

    def test_expected_sequence_conflict_writes_nothing(self, ledger, log):
        ledger.emit(samples.snapshot("churn"))
        ledger.emit(samples.trained("churn"))
        before = snapshot_of(log)

        with pytest.raises(ConflictError):
            ledger.emit(samples.evaluated("churn"), expected_sequence=1)
        assert snapshot_of(log) == before

        accepted = ledger.emit(samples.evaluated("churn"), expected_sequence=2)
        assert accepted.event.sequence == 3

    def test_retry_with_the_same_event_id_is_a_duplicate_and_writes_nothing(self, ledger, log):
        ledger.emit(samples.snapshot("churn"))
        draft = samples.trained("churn")
        first = ledger.emit(draft)
        before = snapshot_of(log)

        again = ledger.emit(draft)

        assert again.duplicate
        assert (again.position, again.hash, again.event.sequence) == (first.position, first.hash, 2)
        assert snapshot_of(log) == before

        other = samples.trained("churn", 2).model_copy(update={"event_id": draft.event_id})
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(other)
        assert refused.value.rule == "event-id-unique"
        assert snapshot_of(log) == before

    def test_an_event_id_of_another_model_is_never_a_retryable_conflict(self, ledger, log):
        # Event ids are unique in the whole log, on every backend: receipts, audits
        # and every view keyed by event id rely on it. ConflictError would tell a
        # client "try again"; a reused id can never succeed.
        first = ledger.emit(samples.snapshot("churn"))
        reused = samples.snapshot("fraud").model_copy(update={"event_id": first.event.event_id})
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(reused)
        assert not isinstance(refused.value, ConflictError), refused.value
        assert refused.value.rule == "event-id-unique"
        assert "churn" in refused.value.reason
        assert [codec.decode(r.data).model for r in log.read()] == ["churn"]
        assert ledger.emit(samples.snapshot("fraud", "s2")).event.sequence == 1

    def test_an_event_id_is_refused_whichever_partition_holds_it(self, ledger, log):
        # On Kafka, models land on different partitions: the id of an event on any
        # partition is taken, including one this process never wrote to.
        models = [f"m{i}" for i in range(12)]
        partitions = {m: log.partition_for(m) for m in models} if hasattr(log, "partition_for") else {}
        taken = ledger.emit(samples.snapshot(models[0]))
        others = [m for m in models[1:] if partitions.get(m) != partitions.get(models[0])] or models[1:]
        with Ledger(open_log(log.url)) as fresh:  # a writer that never read models[0]'s partition
            for writer, model in itertools.product((ledger, fresh), others[:2]):
                clone = samples.snapshot(model).model_copy(update={"event_id": taken.event.event_id})
                with pytest.raises(RuleViolation, match=models[0]) as refused:
                    writer.emit(clone)
                assert refused.value.rule == "event-id-unique"
        assert [codec.decode(r.data).model for r in log.read()] == [models[0]]

    def test_a_batch_giving_one_event_id_to_two_events_is_refused(self, ledger, log):
        first = samples.snapshot("churn", "s1")
        second = samples.snapshot("churn", "s2").model_copy(update={"event_id": first.event_id})
        with pytest.raises(InputError, match="more than one event"):
            ledger.emit_many([first, second])
        assert list(log.read()) == []

    def test_an_event_too_large_for_kafka_is_bad_input_on_every_backend(self, ledger, log):
        # Kafka refuses messages over ~1 MB; the embedded log must not accept what
        # the Kafka one cannot hold, and neither may answer "retry" to it.
        ledger.emit(samples.snapshot("churn"))
        before = snapshot_of(log)
        huge = samples.snapshot("churn", "s2").model_copy(update={"uri": "file:///" + "x" * 1_100_000})
        with pytest.raises(InputError, match="too large"):
            ledger.emit(huge)
        assert snapshot_of(log) == before
        assert ledger.emit(samples.snapshot("churn", "s3")).event.sequence == 2

    def test_a_batch_is_atomic(self, ledger, log):
        ledger.emit(samples.snapshot("churn"))
        before = snapshot_of(log)

        broken = [
            samples.trained("churn", actor="alice"),
            samples.evaluated("churn"),
            samples.approved("churn", actor="alice"),  # the trainer approving: four-eyes
            samples.deployed("churn"),
        ]
        with pytest.raises(RuleViolation) as refused:
            ledger.emit_many(broken)
        assert refused.value.rule == "four-eyes"
        assert snapshot_of(log) == before

        accepted = ledger.emit_many(
            [samples.trained("churn"), samples.evaluated("churn"), samples.approved("churn", actor="bob")]
        )
        assert [a.event.sequence for a in accepted] == [2, 3, 4]
        assert [r.hash for r in log.read(model="churn")][1:] == [a.hash for a in accepted]

    # --- reading --------------------------------------------------------------------

    def test_read_after_resumes_exactly(self, ledger, log):
        for model in ("churn", "fraud", "pricing"):
            ledger.emit(samples.snapshot(model))
            ledger.emit(samples.trained(model))
        everything = list(log.read())
        assert len(everything) == 6

        for cut in range(len(everything) + 1):
            seen: dict[int, int] = {}
            for record in everything[:cut]:
                seen[record.position.partition] = record.position.offset
            assert list(log.read(after=seen)) == everything[cut:]

        seen = {}
        for record in everything:
            seen[record.position.partition] = record.position.offset
        new = [ledger.emit(samples.evaluated("fraud")), ledger.emit(samples.snapshot("churn", "s2"))]
        newer = [r for r in log.read() if r not in everything]
        assert {r.hash for r in newer} == {a.hash for a in new}
        assert list(log.read(after=seen)) == newer

    def test_interleaved_models_keep_their_own_order(self, ledger, log):
        models = ["churn", "fraud", "pricing"]
        expected: dict[str, list[str]] = {m: [] for m in models}
        for step in range(3):
            for model in models:
                draft = [samples.snapshot(model), samples.trained(model), samples.evaluated(model)][step]
                expected[model].append(ledger.emit(draft).hash)

        for model in models:
            stream = list(log.read(model=model))
            assert [r.hash for r in stream] == expected[model]
            assert [codec.decode(r.data).sequence for r in stream] == [1, 2, 3]
        everything = list(log.read())
        for model in models:
            assert [r.hash for r in everything if r.model == model] == expected[model]
        assert log.models() == sorted(models)

    def test_models_lists_every_stream(self, ledger, log):
        assert log.models() == []
        ledger.emit(samples.snapshot("pricing"))
        ledger.emit(samples.snapshot("churn"))
        ledger.emit(samples.snapshot("churn", "s2"))
        assert log.models() == ["churn", "pricing"]

    # --- tamper evidence and state from the log ---------------------------------------

    def test_verify_is_ok_on_an_intact_log(self, ledger):
        for model in ("churn", "fraud"):
            for draft in samples.lifecycle(model):
                ledger.emit(draft)

        report = ledger.verify()

        assert report.ok, report.problems
        assert report.events == 10
        assert sorted(report.streams) == ["churn", "fraud"]

    def test_a_fresh_ledger_rebuilds_state_from_the_log(self, ledger, log):
        accepted = [ledger.emit(draft) for draft in samples.lifecycle("churn")]

        with Ledger(open_log(log.url)) as fresh:
            state = fresh.state("churn")
            assert state.deployed == {"production": 1}
            assert state.sequence == 5
            with pytest.raises(RuleViolation) as refused:
                fresh.emit(samples.trained("churn", 1, actor="carol"))
            assert refused.value.rule == "version-never-reused"

            next_one = fresh.emit(samples.deployed("churn", environment="staging"))
            assert next_one.event.sequence == 6
            assert next_one.event.prev_hash == accepted[-1].hash

        # The first ledger learns of the other's event from the log, not its memory.
        # (an alert on staging is accepted only where v1 serves there: #6 is known)
        alert = ledger.emit(samples.drift("churn", environment="staging"))
        assert alert.event.sequence == 7
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(ModelDeployed(model="churn", version=1, actor="deployer", environment="staging"))
        assert refused.value.rule == "already-deployed"


class TestEmbeddedLog(LogContract):
    @pytest.fixture
    def log(self, sqlite_log_url):
        log = open_log(sqlite_log_url)
        yield log
        log.close()


@pytest.mark.kafka
class TestKafkaLog(LogContract):
    @pytest.fixture
    def log(self, kafka_log_url):
        log = open_log(kafka_log_url)
        yield log
        log.close()
