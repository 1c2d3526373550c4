"""Avro single-object encoding: round trips, an independent decoder, bad input."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timezone

import avro.io
import avro.schema
import pytest

from ledger import catalogue, codec, samples
from ledger.errors import DecodeError, InputError
from ledger.events import ApprovalRejected, Event

WHEN = datetime(2026, 3, 3, 9, 30, 0, 654321, tzinfo=timezone.utc)


def accepted(draft: Event, sequence: int = 1) -> Event:
    return draft.model_copy(update={"sequence": sequence, "prev_hash": "ab" * 32, "recorded_at": WHEN})


EVENTS = [
    accepted(samples.snapshot("m")),
    accepted(samples.trained("m", parent_version=None)),
    accepted(samples.trained("m", 2, parent_version=1, trigger="drift", trigger_alert_id=str(uuid.uuid4()))),
    accepted(samples.evaluated("m")),
    accepted(samples.approved("m")),
    accepted(ApprovalRejected(model="m", version=1, actor="carol", reason="ünïcode réason ✓")),
    accepted(samples.deployed("m")),
    accepted(samples.drift("m")),
    accepted(samples.retired("m", None)),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_type)
def test_round_trip_keeps_every_field(event):
    assert codec.decode(codec.encode(event).data) == event


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_type)
def test_header_is_marker_and_writer_fingerprint(event):
    encoded = codec.encode(event)
    assert encoded.data[:2] == b"\xc3\x01"
    assert encoded.data[2:10] == catalogue.default().latest(event.event_type).fingerprint
    assert encoded.fingerprint == encoded.data[2:10]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_type)
def test_apache_avro_decodes_what_we_wrote_with_the_full_schema_file_alone(event):
    """An independent implementation, handed only schemas/full/<Type>.vN.avsc."""
    data = codec.encode(event).data
    entry = catalogue.default().by_fingerprint(data[2:10])
    schema = avro.schema.parse((catalogue.schema_dir() / f"full/{entry.event_type}.v{entry.version}.avsc").read_text())
    record = avro.io.DatumReader(schema, schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    envelope = record["envelope"]
    assert envelope["event_type"] == event.event_type
    assert str(envelope["event_id"]) == str(event.event_id)
    assert envelope["model"] == event.model
    assert envelope["version"] == event.version
    assert envelope["sequence"] == event.sequence
    assert envelope["prev_hash"] == event.prev_hash
    assert envelope["recorded_at"] == WHEN
    payload = event.model_dump(mode="json")
    for name in event.payload():
        value = record[name]
        if isinstance(value, list):
            value = [dict(v) if isinstance(v, dict) else v for v in value]
        assert value == payload[name], name


def test_a_draft_is_not_encoded():
    with pytest.raises(InputError):
        codec.encode(samples.deployed("m"))


GOOD = codec.encode(EVENTS[6]).data
UNKNOWN_FINGERPRINT = GOOD[:2] + b"\x00" * 8 + GOOD[10:]
OTHER_TYPE = codec.encode(EVENTS[4]).data  # ModelApproved body
MISLABELLED = OTHER_TYPE[:2] + codec.encode(EVENTS[5]).data[2:10] + OTHER_TYPE[10:]

BAD = [
    ("empty", b"", "too short"),
    ("short", b"\xc3\x01\x00", "too short"),
    ("json", b'{"model": "m", "version": 1}', "marker"),
    ("wrong-marker", b"\xc3\x02" + GOOD[2:], "marker"),
    ("unknown-fingerprint", UNKNOWN_FINGERPRINT, "unknown writer schema fingerprint"),
    ("truncated", GOOD[:-5], "cannot decode"),
    ("trailing-bytes", GOOD + b"\x00\x01", "trailing"),
    ("mislabelled", MISLABELLED, "ApprovalRejected"),
]


@pytest.mark.parametrize(("data", "message"), [(b, m) for _, b, m in BAD], ids=[n for n, _, _ in BAD])
def test_bad_bytes_raise_a_decode_error(data, message):
    with pytest.raises(DecodeError, match=message):
        codec.decode(data)
