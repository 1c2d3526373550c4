"""The bytes an event is stored as never change for the same event: the hash chain
links events by the SHA-256 of their stored bytes, so an encoder that wrote one
byte differently would make every existing log fail verification after it, and
re-encoding for a proof would not reproduce what was hashed.

Pinned twice: every stored sample written with a schema that is still the newest
of its type re-encodes to exactly its file's bytes, and what the append path
stores for a whole lifecycle is exactly ``codec.encode`` of the stored event."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledger import catalogue, codec, samples
from ledger.append import Appender, check_drafts, decide
from ledger.events import DataSnapshotted, ModelDeployed, utcnow
from ledger.rules import ModelState

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
CAT = catalogue.default()
CURRENT = [
    path
    for path in sorted(SAMPLES.glob("v*/*.bin"))
    if CAT.by_fingerprint(path.read_bytes()[2:10]) is CAT.latest(path.stem)
]


def test_every_event_type_has_a_current_sample_to_pin():
    assert {path.stem for path in CURRENT} == set(CAT.event_types())


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_stored_sample_re_encodes_to_the_same_bytes(path):
    data = path.read_bytes()
    assert codec.encode(codec.decode(data)).data == data


def _drafts(model: str) -> list:
    lifecycle = samples.lifecycle(model)
    feedback = samples.feedback(model)
    bare = samples.snapshot(model, "s\u00e9-2").model_copy(update={"uri": None, "feature_stats": ()})
    return [
        *lifecycle,
        samples.drift(model),
        feedback,
        samples.degraded(model, str(feedback.event_id)),
        samples.trained(model, 2, snapshots=("s1",), parent_version=1),
        bare,
        ModelDeployed(model=model, version=1, actor="deployer", environment="staging", traffic_percent=10),
        samples.retired(model, 2),
    ]


def test_the_append_path_stores_exactly_what_the_codec_encodes():
    drafts = _drafts("pinned")
    check_drafts(drafts)
    now = utcnow()
    decision = decide(ModelState("pinned"), lambda event_id: None, drafts, clock=lambda: now)
    assert len(decision.records) == len(drafts)
    previous = "0" * 64
    for record, event in zip(decision.records, decision.slots):
        assert record.data == codec.encode(event).data
        assert codec.decode(record.data) == event
        assert event.prev_hash == previous
        previous = hashlib.sha256(record.data).hexdigest()
        assert record.hash == previous
    assert decision.state.last_hash == previous


def test_a_log_appended_one_by_one_and_in_a_batch_holds_the_same_events(tmp_path):
    from ledger.backends.sqlite import SqliteLog

    drafts = _drafts("pinned")
    now = utcnow()  # one recorded_at for both logs, so the same drafts make the same bytes
    with SqliteLog(tmp_path / "one.db") as one, SqliteLog(tmp_path / "batch.db") as batch:
        clocked = [Appender(one, clock=lambda: now), Appender(batch, clock=lambda: now)]
        singles = [clocked[0].append([draft])[0] for draft in drafts]
        batched = clocked[1].append(drafts)
        assert [a.hash for a in singles] == [a.hash for a in batched]
        assert [r.data for r in one.read()] == [r.data for r in batch.read()]
        assert all(isinstance(a.event, type(d)) for a, d in zip(batched, drafts))
        assert isinstance(batched[0].event, DataSnapshotted)
