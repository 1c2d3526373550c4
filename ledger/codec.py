"""Avro single-object encoding of events.

A message is the Avro specification's single-object encoding: the marker
``C3 01``, the 8-byte CRC-64-AVRO fingerprint of the writer schema, then the Avro
binary body. Any Avro library decodes it with the matching file in
``schemas/full/``. Readers resolve the writer schema (found by fingerprint) to the
newest published schema of the same event type, so old events stay readable.

Avro dicts exist only inside this module: callers see :class:`ledger.events.Event`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from fastavro import schemaless_reader, schemaless_writer
from pydantic import ValidationError

from ledger import catalogue as _catalogue
from ledger.errors import DecodeError, InputError
from ledger.events import BY_TYPE, Event

MARKER = b"\xc3\x01"
HEADER_SIZE = 10

_ENVELOPE_FIELDS = tuple(Event.model_fields)


@dataclass(frozen=True, slots=True)
class Encoded:
    event_type: str
    fingerprint: bytes
    data: bytes


def split(data: bytes) -> tuple[bytes, bytes]:
    """``(fingerprint, body)`` of a single-object encoded message."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"message of {len(data)} bytes is too short for Avro single-object encoding")
    if data[:2] != MARKER:
        raise DecodeError(f"not Avro single-object encoding: marker is {data[:2].hex()}, expected c301")
    return data[2:HEADER_SIZE], data[HEADER_SIZE:]


def _to_record(event: Event, values: dict | None = None) -> dict:
    if event.is_draft or event.prev_hash is None or event.recorded_at is None:
        raise InputError("only an accepted event (with sequence, prev_hash, recorded_at) is encoded")
    if values is None:
        values = event.model_dump(mode="python")
    pop = values.pop
    envelope = {name: pop(name) for name in _ENVELOPE_FIELDS}
    envelope["event_id"] = str(envelope["event_id"])
    envelope["event_type"] = event.event_type
    values["envelope"] = envelope  # fastavro writes fields in the schema's order, not the dict's
    return values


def encode(event: Event, catalogue: _catalogue.Catalogue | None = None, *, values: dict | None = None) -> Encoded:
    """The single-object encoding of an accepted ``event``. ``values`` is
    ``event.model_dump()`` when the caller has it already (the append path dumps
    each draft once for its checks); it is used up."""
    catalogue = catalogue or _catalogue.default()
    entry = catalogue.latest(event.event_type)
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(entry.fingerprint)
    try:
        schemaless_writer(buffer, entry.parsed, _to_record(event, values))
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot encode {event.event_type}: {exc}") from exc
    return Encoded(event.event_type, entry.fingerprint, buffer.getvalue())


def _read(data: bytes, catalogue: _catalogue.Catalogue) -> tuple[_catalogue.SchemaEntry, dict]:
    fingerprint, body = split(data)
    writer = catalogue.by_fingerprint(fingerprint)
    if writer is None:
        raise DecodeError(f"unknown writer schema fingerprint {fingerprint.hex()}")
    reader = catalogue.latest(writer.event_type)
    stream = io.BytesIO(body)
    try:
        record = schemaless_reader(stream, writer.parsed, reader.parsed)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on corrupt input
        raise DecodeError(f"cannot decode {writer.event_type} body: {exc}") from exc
    if stream.tell() != len(body):
        raise DecodeError(f"{writer.event_type} body has {len(body) - stream.tell()} trailing bytes")
    return writer, record


def read_record(data: bytes, catalogue: _catalogue.Catalogue | None = None) -> tuple[str, dict]:
    """``(event_type, Avro record)`` of ``data``, resolved to the newest schema of its
    type — for writers of other Avro containers (the evidence export)."""
    writer, record = _read(data, catalogue or _catalogue.default())
    return writer.event_type, record


def decode(data: bytes, catalogue: _catalogue.Catalogue | None = None) -> Event:
    """The event in ``data``, read with the newest schema of its type."""
    writer, record = _read(data, catalogue or _catalogue.default())
    envelope = record.pop("envelope")
    event_type = envelope.pop("event_type")
    if event_type != writer.event_type:
        raise DecodeError(
            f"envelope says {event_type!r} but the writer schema is {writer.event_type!r}"
        )
    # fastavro hands the uuid logical type back as a uuid.UUID already, which the
    # model takes as it is (a str would be parsed again, per event).
    try:
        return BY_TYPE[event_type].model_validate({**envelope, **record})
    except ValidationError as exc:
        raise DecodeError(f"{event_type} does not satisfy the event model: {exc}") from exc
