"""verify() on records in memory: what an auditor reads in its report."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from ledger import codec, samples
from ledger.events import GENESIS_HASH
from ledger.log import Position, StoredRecord
from ledger.verify import verify

WHEN = datetime(2026, 3, 3, tzinfo=timezone.utc)


def stream(model: str) -> list[StoredRecord]:
    records, previous = [], GENESIS_HASH
    for sequence, draft in enumerate(samples.lifecycle(model), start=1):
        event = draft.model_copy(update={"sequence": sequence, "prev_hash": previous, "recorded_at": WHEN})
        data = codec.encode(event).data
        records.append(StoredRecord(Position(0, sequence), model, sequence, event.event_type, data[2:10], data))
        previous = hashlib.sha256(data).hexdigest()
    return records


def test_an_intact_stream_reports_its_head():
    records = stream("pump")
    report = verify(records)
    assert report.ok
    assert report.summary() == "1 stream(s), 5 event(s): intact"
    assert report.streams["pump"].head_hash == hashlib.sha256(records[-1].data).hexdigest()


def test_foreign_records_are_named_and_counted_apart_from_events():
    records = stream("pump")
    keyless = StoredRecord(Position(0, 90), None, None, None, None, b"hello")
    foreign = StoredRecord(Position(0, 91), "pump", None, None, None, b'{"not": "avro"}')
    report = verify([*records, keyless, foreign])
    assert not report.ok
    lines = [str(p) for p in report.problems]
    assert any(line.startswith("undecodable: (no model key) at 0:90") for line in lines)
    assert any(line.startswith("undecodable: pump at 0:91") for line in lines)
    assert report.summary() == "1 stream(s), 5 event(s), 2 unreadable record(s): 2 problem(s)"


def test_an_event_of_another_model_in_a_stream_is_misplaced():
    pump, fan = stream("pump"), stream("fan")
    moved = StoredRecord(Position(0, 50), "pump", 6, fan[0].event_type, fan[0].fingerprint, fan[0].data)
    report = verify([*pump, moved])
    assert [p.kind for p in report.problems] == ["misplaced"]
