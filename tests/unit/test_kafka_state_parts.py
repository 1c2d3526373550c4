"""The parts of Kafka rule-state snapshots that need no broker: the event-id filter,
the record format, and the fold that computes each stream's entry."""

from __future__ import annotations

import uuid

from ledger import rule_snapshots, samples
from ledger.backends import kafka_state
from ledger.backends.sqlite import SqliteLog
from ledger.client import Ledger
from ledger.events import DriftDetected


def test_the_id_filter_holds_every_id_added_and_few_others_across_its_growth():
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    ids_filter = kafka_state.IdFilter()
    for event_id in ids:
        ids_filter.add(event_id)
    assert len(ids_filter.slices) > 1  # it grew past its first slice
    assert all(ids_filter.might_hold(event_id) for event_id in ids)
    others = [str(uuid.uuid4()) for _ in range(20_000)]
    false_positives = sum(ids_filter.might_hold(event_id) for event_id in others)
    assert false_positives <= 40  # the design rate is below 0.1 %; 0.2 % leaves room for chance

    again = kafka_state.IdFilter.from_json(ids_filter.to_json())
    assert all(again.might_hold(event_id) for event_id in ids)
    assert sum(again.might_hold(event_id) for event_id in others) == false_positives


def test_a_record_round_trips_and_anything_else_is_no_snapshot():
    ids = kafka_state.IdFilter()
    ids.add("e1")
    snapshot = kafka_state.PartitionSnapshot(
        "ledger.lifecycle", 2, 120,
        {"churn": kafka_state.Entry(7, "ab" * 32, 118, b'{"x":1}'), "broken": kafka_state.Entry(-1, "cd" * 32, 40, None)},
        ids,
    )
    data = kafka_state.encode(snapshot)
    back = kafka_state.decode(data, "ledger.lifecycle", 2)
    assert back is not None
    assert back.offset == 120 and back.entries == snapshot.entries and back.ids.might_hold("e1")

    assert kafka_state.decode(data, "ledger.lifecycle", 1) is None  # another partition's
    assert kafka_state.decode(data, "other.topic", 2) is None
    for garbage in (None, b"", b"\x00\xff", b'{"format": 1}', kafka_state.encode(snapshot)[:-5]):
        assert kafka_state.decode(garbage, "ledger.lifecycle", 2) is None
    snapshot.entries["churn"] = kafka_state.Entry(7, "ab" * 32, 120, None)  # a head at or past its own offset
    assert kafka_state.decode(kafka_state.encode(snapshot), "ledger.lifecycle", 2) is None


def _drift(model: str, i: int) -> DriftDetected:
    return DriftDetected(model=model, version=1, actor="monitor", environment="production", metric="psi",
                         value=0.1 + i / 1000, threshold=0.2, reference_snapshot_id="s1")


def test_entries_fold_each_stream_from_its_last_entry_as_the_full_fold_does(tmp_path):
    with SqliteLog(tmp_path / "log.db") as log:
        ledger = Ledger(log)
        for draft in [samples.snapshot("churn"), samples.trained("churn"), samples.evaluated("churn"),
                      samples.approved("churn"), samples.deployed("churn")]:
            ledger.emit(draft)
        for i in range(10):
            ledger.emit(_drift("churn", i))
        records = list(log.read(model="churn"))
        expected = ledger.state("churn")

    first = kafka_state.advance({}, {"churn": records[:6]})
    assert first["churn"].sequence == 6 and first["churn"].offset == records[5].position.offset
    entries = kafka_state.advance(first, {"churn": records[6:]})
    assert rule_snapshots.loads(entries["churn"].state) == expected
    assert (entries["churn"].sequence, entries["churn"].hash) == (15, records[-1].hash)

    # Records that do not continue the entry's head (one missing): the stream is
    # marked for the full fold, not given a state.
    gap = kafka_state.advance(first, {"churn": records[7:]})
    assert gap["churn"].state is None and gap["churn"].sequence == 15
    # A stream already without a state stays without one.
    assert kafka_state.advance(gap, {"churn": records[14:]})["churn"].state is None


def test_a_rule_state_snapshot_holds_every_field_of_the_state(tmp_path):
    with SqliteLog(tmp_path / "log.db") as log:
        ledger = Ledger(log)
        for draft in [samples.snapshot("churn"), samples.trained("churn"), samples.evaluated("churn"),
                      samples.approved("churn"), samples.deployed("churn"), _drift("churn", 1)]:
            ledger.emit(draft)
        ledger.emit(samples.feedback("churn"))
        state = ledger.state("churn")
    assert state.alerts and state.feedback
    assert rule_snapshots.loads(rule_snapshots.dumps(state)) == state
