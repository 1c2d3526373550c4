"""Evidence files: the raw log, exported as an Avro Object Container File that any
Avro tool opens and that ``ledger verify --file`` checks offline, without a broker.

Each record of the file holds one event twice:

* ``data`` — the exact stored bytes (single-object encoding), so the hash chain can
  be recomputed byte for byte;
* ``event`` — the same event decoded, as a union of the event schemas, so a person
  with any Avro reader sees its fields.

The file's metadata carries every published writer schema (``ledger.schemas``,
fingerprint → schema text) and, per model, the chain anchor and head
(``ledger.chains``): the sequence and hash just before the first exported event, and
the last exported sequence and hash. A file cut short, or with events removed at
the end, no longer reaches its recorded head.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import fastavro

from ledger import catalogue as _catalogue
from ledger import codec
from ledger.errors import DecodeError, InputError
from ledger.events import GENESIS_HASH
from ledger.log import Position, StoredRecord
from ledger.verify import Problem, Report, verify

FORMAT = "ledger-evidence/1"


def _event_union(catalogue: _catalogue.Catalogue) -> list:
    """The newest schema of every event type, as one Avro union: each named type
    (the envelope above all) is defined once and referenced by name after that."""
    union, defined = [], set()

    def dedupe(schema, namespace):
        if isinstance(schema, list):
            return [dedupe(s, namespace) for s in schema]
        if not isinstance(schema, dict):
            return schema
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            space = schema.get("namespace", namespace)
            name = schema["name"] if "." in schema["name"] else f"{space}.{schema['name']}"
            if name in defined:
                return name
            defined.add(name)
            schema = dict(schema)
            if kind == "record":
                schema["fields"] = [{**f, "type": dedupe(f["type"], space)} for f in schema["fields"]]
            return schema
        if kind == "array":
            return {**schema, "items": dedupe(schema["items"], namespace)}
        if kind == "map":
            return {**schema, "values": dedupe(schema["values"], namespace)}
        return schema

    for event_type in catalogue.event_types():
        union.append(dedupe(copy.deepcopy(catalogue.latest(event_type).schema), None))
    return union


def file_schema(catalogue: _catalogue.Catalogue | None = None) -> dict:
    catalogue = catalogue or _catalogue.default()
    return {
        "type": "record",
        "name": "EvidenceRecord",
        "namespace": "io.mlledger.evidence",
        "doc": "One event of the ledger: its exact stored bytes and, decoded, its fields.",
        "fields": [
            {"name": "partition", "type": "int", "doc": "Log partition (0 on the embedded log)."},
            {"name": "offset", "type": "long", "doc": "Offset (row position) in that partition."},
            {"name": "model", "type": "string", "doc": "Model stream."},
            {"name": "sequence", "type": "long", "doc": "Sequence in the model stream."},
            {"name": "event_type", "type": "string"},
            {"name": "hash", "type": "string", "doc": "Hex SHA-256 of data."},
            {"name": "data", "type": "bytes", "doc": "Exact stored bytes: Avro single-object encoding."},
            {"name": "event", "type": _event_union(catalogue), "doc": "The event, decoded with the newest schema of its type."},
        ],
    }


def export(
    records: Iterable[StoredRecord],
    out: Path,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str = "",
    overwrite: bool = False,
) -> dict:
    """Write the evidence file; return its summary (events and chains).

    An existing file is an error unless ``overwrite``: evidence an auditor kept is
    not replaced by a mistyped --out."""
    if not overwrite and Path(out).exists():
        raise InputError(f"{out} exists: export does not overwrite it (use --force to replace it)")
    catalogue = _catalogue.default()
    chains: dict[str, dict] = {}
    rows = []
    unreadable = []
    for record in records:
        if model is not None and record.model != model:
            continue
        try:
            event = codec.decode(record.data)
        except DecodeError as exc:
            # A record no ledger writer could have written (on Kafka anyone may
            # produce, and nothing can be deleted): it cannot be an event of the
            # file, so the file names it, and verifying the file fails as
            # verifying the log does. It is placed in time by its append time.
            appended = (
                datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc)
                if record.timestamp_ms is not None
                else None
            )
            if appended is not None and ((since and appended < since) or (until and appended > until)):
                continue
            unreadable.append(
                {"position": str(record.position), "model": record.model, "sha256": record.hash, "reason": str(exc)}
            )
            continue
        if since is not None and event.recorded_at < since:
            continue
        if until is not None and event.recorded_at > until:
            continue
        event_type, avro_record = codec.read_record(record.data)
        chain = chains.get(event.model)
        if chain is None:
            chain = chains[event.model] = {"anchor_sequence": event.sequence - 1, "anchor_hash": event.prev_hash}
        chain["head_sequence"], chain["head_hash"] = event.sequence, record.hash
        rows.append(
            {
                "partition": record.position.partition,
                "offset": record.position.offset,
                "model": event.model,
                "sequence": event.sequence,
                "event_type": event_type,
                "hash": record.hash,
                "data": record.data,
                "event": (f"io.mlledger.events.{event_type}", avro_record),
            }
        )
    metadata = {
        "ledger.format": FORMAT,
        "ledger.source": source,
        "ledger.filters": json.dumps(
            {"model": model, "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
        ),
        "ledger.chains": json.dumps(chains, sort_keys=True),
        "ledger.unreadable": json.dumps(unreadable),
        "ledger.schemas": json.dumps({e.fingerprint.hex(): e.text for e in catalogue.entries()}, sort_keys=True),
    }
    out = Path(out)
    try:
        with out.open("wb" if overwrite else "xb") as handle:
            fastavro.writer(handle, fastavro.parse_schema(file_schema(catalogue)), rows, codec="deflate", metadata=metadata)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc}") from exc
    return {"file": str(out), "events": len(rows), "chains": chains, "unreadable": len(unreadable)}


def recorded_heads(path: Path) -> dict[str, tuple[int, str]]:
    """Per model, the chain head recorded in an evidence file or in the JSON report
    of ``ledger verify --json``: ``{model: (sequence, hash)}``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    try:
        if raw[:4] == b"Obj\x01":
            import io

            metadata = fastavro.reader(io.BytesIO(raw)).metadata
            if metadata.get("ledger.format") != FORMAT:
                raise InputError(f"{path} is not a ledger evidence file (no {FORMAT} marker)")
            chains = json.loads(metadata["ledger.chains"])
            return {m: (int(c["head_sequence"]), str(c["head_hash"])) for m, c in chains.items()}
        report = json.loads(raw.decode("utf-8"))
        return {m: (int(h["sequence"]), str(h["hash"])) for m, h in report["heads"].items()}
    except InputError:
        raise
    except (ValueError, KeyError, TypeError, EOFError, AttributeError) as exc:
        raise InputError(f"{path} holds no chain heads (an evidence file or a `ledger verify --json` report): {exc}") from exc


def verify_file(path: Path) -> Report:
    """Check an evidence file offline: every chain from its anchor to its head."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    with handle:
        try:
            # The record name of the decoded copy is kept: ModelApproved and
            # ApprovalRejected have the same fields.
            reader = fastavro.reader(handle, return_record_name=True, return_record_name_override=True)
            metadata = reader.metadata
            if metadata.get("ledger.format") != FORMAT:
                raise InputError(f"{path} is not a ledger evidence file (no {FORMAT} marker)")
            chains = json.loads(metadata["ledger.chains"])
            anchors = {m: (c["anchor_sequence"], c["anchor_hash"] or GENESIS_HASH) for m, c in chains.items()}
            heads = {m: (c["head_sequence"], c["head_hash"]) for m, c in chains.items()}
            unreadable = [
                Problem(item["model"], "undecodable", item["position"], None, None, f"{item['reason']} (sha256 {item['sha256']})")
                for item in json.loads(metadata.get("ledger.unreadable", "[]"))
            ]
            records, copies = [], []
            for row in reader:
                records.append(
                    StoredRecord(
                        position=Position(row["partition"], row["offset"]),
                        model=row["model"],
                        sequence=row["sequence"],
                        event_type=row["event_type"],
                        fingerprint=row["data"][2:10],
                        data=row["data"],
                        recorded_hash=row["hash"],
                    )
                )
                copies.append(row["event"])
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - fastavro, zlib and json raise many types on a damaged file
            raise DecodeError(f"{path} is damaged: {type(exc).__name__}: {exc}") from exc
    report = verify(records, anchors=anchors)
    report.unreadable.extend(unreadable)
    _check_decoded_copies(report, records, copies)
    for model, (head_sequence, head_hash) in heads.items():
        stream = report.streams.get(model)
        if stream is None:
            report.unreadable.append(
                Problem(model, "missing", "-", head_sequence, None, "the file holds none of this model's events")
            )
        elif stream.problem is None and (stream.head_sequence, stream.head_hash) != (head_sequence, head_hash):
            stream.problem = Problem(
                model,
                "missing",
                "-",
                stream.head_sequence + 1,
                None,
                f"the file ends at #{stream.head_sequence} but its recorded head is #{head_sequence}",
            )
    return report


def _check_decoded_copies(report: Report, records: list[StoredRecord], copies: list) -> None:
    """Name the first event of a stream whose decoded copy (what an Avro tool shows)
    is not what its hashed bytes decode to."""
    for record, copy_ in zip(records, copies):
        try:
            event_type, decoded = codec.read_record(record.data)
        except DecodeError:
            continue  # the chain check names undecodable bytes
        if copy_ == (f"io.mlledger.events.{event_type}", decoded):
            continue
        stream = report.streams.get(record.model)
        if stream is None or (stream.problem is not None and (stream.problem.sequence or 0) <= (record.sequence or 0)):
            continue
        stream.problem = Problem(
            record.model,
            "altered",
            str(record.position),
            record.sequence,
            None,
            "its decoded copy in the file differs from what its stored bytes decode to",
        )
