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

``ledger.digest`` (format 2) is the SHA-256 of every other metadata entry and of
each row's index (partition, offset, model, sequence, type, hash): an edit of the
metadata or of a row's index that the chains cannot see (the source, the filters,
a schema's text, a row's offset) fails verification. It is not a signature: who
rewrites the file on purpose can recompute it, as they can the chain heads; only
the log itself, or a checkpoint saved elsewhere, answers that. Format 1 files (no
digest) are still verified, without that check.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import fastavro

from ledger import catalogue as _catalogue
from ledger import codec, merkle
from ledger.errors import DecodeError, InputError
from ledger.events import GENESIS_HASH, SHA256_HEX
from ledger.log import Position, StoredRecord
from ledger.verify import Problem, Report, verify

FORMAT = "ledger-evidence/2"
FORMATS = ("ledger-evidence/1", FORMAT)
"""Formats ``verify --file`` reads: 1 had no ``ledger.digest``."""

FILE = "(evidence file)"
"""The stream name of problems that belong to the whole file."""

def _digest(metadata: dict, rows: Iterable[tuple]) -> str:
    """SHA-256 binding every metadata entry but the digest (the container's schema
    text too) to the rows' index."""
    bound = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in metadata.items()}
    bound.pop("ledger.digest", None)
    text = json.dumps({"metadata": bound, "rows": [list(r) for r in rows]}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _row_index(row: dict) -> tuple:
    return (row["partition"], row["offset"], row["model"], row["sequence"], row["event_type"], row["hash"])


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
    checkpoints: Iterable[str] = (),
    overwrite: bool = False,
) -> dict:
    """Write the evidence file; return its summary (events and chains).

    ``checkpoints`` are the log's latest signed checkpoints (with their
    co-signatures), carried in the metadata; an unfiltered export also records
    where the records it cannot carry (unreadable ones) sit in each partition's
    Merkle tree, so ``verify --file F --checkpoint SAVED`` can rebuild the tree.

    An existing file is an error unless ``overwrite``: evidence an auditor kept is
    not replaced by a mistyped --out."""
    if not overwrite and Path(out).exists():
        raise InputError(f"{out} exists: export does not overwrite it (use --force to replace it)")
    catalogue = _catalogue.default()
    chains: dict[str, dict] = {}
    rows = []
    unreadable = []
    leaves: dict[int, int] = {}
    absent: dict[int, dict[str, str]] = {}
    for record in records:
        if model is not None and record.model != model:
            continue
        leaf_index = leaves.get(record.position.partition, 0)
        leaves[record.position.partition] = leaf_index + 1
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
            absent.setdefault(record.position.partition, {})[str(leaf_index)] = merkle.leaf_hash(record.data).hex()
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
        "ledger.checkpoints": json.dumps(list(checkpoints)),
        "ledger.tree": json.dumps(
            {
                "complete": model is None and since is None and until is None,
                "partitions": {str(p): {"leaves": n, "absent": absent.get(p, {})} for p, n in sorted(leaves.items())},
            },
            sort_keys=True,
        ),
    }
    schema = fastavro.parse_schema(file_schema(catalogue))
    # The digest covers the container's own entries as fastavro writes them: an
    # empty file (a header only) shows what they will be.
    header = io.BytesIO()
    fastavro.writer(header, schema, [], codec="deflate", metadata=dict(metadata))
    header.seek(0)
    metadata["ledger.digest"] = _digest(fastavro.reader(header).metadata, (_row_index(r) for r in rows))
    out = Path(out)
    try:
        with out.open("wb" if overwrite else "xb") as handle:
            fastavro.writer(handle, schema, rows, codec="deflate", metadata=metadata)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc}") from exc
    return {"file": str(out), "events": len(rows), "chains": chains, "unreadable": len(unreadable)}


_SHA256_HEX = re.compile(SHA256_HEX)
"""Lowercase, as every hash in the ledger is written (events' ``prev_hash``, the
service's schema): a head in another spelling is malformed, not "altered"."""
_MAX_SEQUENCE = 2**63 - 1  # an Avro long


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "…"


def _checked_heads(path: Path, heads, sequence_key: str, hash_key: str) -> dict[str, tuple[int, str]]:
    """``{model: (sequence, hash)}`` from a file's heads, each one checked: a head
    that could never match (a malformed hash, a sequence no stream can reach) is bad
    input, not a "missing" or "altered" event; no head at all checks nothing."""
    if not isinstance(heads, dict):
        raise InputError(f"{path} holds no chain heads (an evidence file or a `ledger verify --json` report)")
    if not heads:
        raise InputError(f"{path} records no chain heads: there is nothing to check the log against")
    checked = {}
    for model, head in heads.items():
        if not isinstance(head, dict):
            raise InputError(f"{path}: the head of {_shown(model)} is not an object with {sequence_key} and {hash_key}")
        sequence, digest = head.get(sequence_key), head.get(hash_key)
        if type(sequence) is not int or not 1 <= sequence <= _MAX_SEQUENCE:
            raise InputError(
                f"{path}: the head of {_shown(model)} has {sequence_key} {_shown(sequence)}: "
                "not a whole number from 1 to 2^63-1"
            )
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise InputError(
                f"{path}: the head of {_shown(model)} has {hash_key} {_shown(digest)}: "
                "not a SHA-256 in 64 lowercase hex digits"
            )
        checked[model] = (sequence, digest)
    return checked


def recorded_heads(path: Path) -> dict[str, tuple[int, str]]:
    """Per model, the chain head recorded in an evidence file or in the JSON report
    of ``ledger verify --json``: ``{model: (sequence, hash)}``. At least one, each
    well formed (else :class:`InputError`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    try:
        if raw[:4] == b"Obj\x01":
            metadata = fastavro.reader(io.BytesIO(raw)).metadata
            if metadata.get("ledger.format") not in FORMATS:
                raise InputError(f"{path} is not a ledger evidence file (no {FORMAT} marker)")
            chains = json.loads(metadata["ledger.chains"])
            return _checked_heads(path, chains, "head_sequence", "head_hash")
        report = json.loads(raw.decode("utf-8"))
    except InputError:
        raise
    except (ValueError, KeyError, TypeError, EOFError, AttributeError) as exc:
        raise InputError(
            f"{path} holds no chain heads (an evidence file or a `ledger verify --json` report): {type(exc).__name__}"
        ) from exc
    return _checked_heads(path, report.get("heads") if isinstance(report, dict) else None, "sequence", "hash")


_MARKER_SEARCH = 1 << 20


def _unreadable(path: Path, exc: Exception) -> Exception:
    """The error for a file fastavro cannot read: one without a ledger evidence
    format marker near its start (a text file, a database) is not evidence at all
    (bad input); one with it is an evidence file damaged past reading."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_MARKER_SEARCH)
    except OSError:
        head = b""
    if b"ledger-evidence/" not in head:
        return InputError(f"{path} is not a ledger evidence file (no {FORMAT} marker)")
    return DecodeError(f"{path} is damaged: {type(exc).__name__}: {exc}")


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
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types on a file that is no Avro container
            raise _unreadable(path, exc) from exc
        try:
            metadata = reader.metadata
            if metadata.get("ledger.format") not in FORMATS:
                raise InputError(f"{path} is not a ledger evidence file (no {FORMAT} marker)")
            chains = json.loads(metadata["ledger.chains"])
            anchors = {m: (c["anchor_sequence"], c["anchor_hash"] or GENESIS_HASH) for m, c in chains.items()}
            heads = {m: (c["head_sequence"], c["head_hash"]) for m, c in chains.items()}
            unreadable = [
                Problem(item["model"], "undecodable", item["position"], None, None, f"{item['reason']} (sha256 {item['sha256']})")
                for item in json.loads(metadata.get("ledger.unreadable", "[]"))
            ]
            records, copies, index = [], [], []
            for row in reader:
                index.append(_row_index(row))
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
    _check_row_index(report, records)
    report.unreadable.extend(_file_problems(metadata, index, chains))
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


def _file_problems(metadata: dict, index: list[tuple], chains: dict) -> list[Problem]:
    """What is wrong with the file as a whole: its digest, and chains that name
    other models than its rows."""
    problems = []
    recorded = metadata.get("ledger.digest")
    if recorded is None and metadata.get("ledger.format") == FORMAT:
        problems.append(Problem(FILE, "altered", "-", None, None, "the file has no ledger.digest"))
    elif recorded is not None and recorded != _digest(metadata, index):
        problems.append(
            Problem(
                FILE, "altered", "-", None, None,
                "its metadata or its rows' positions, models, sequences, types or hashes differ from "
                "what was exported (ledger.digest does not match)",
            )
        )
    in_rows = {row[2] for row in index}
    for model in sorted(in_rows - set(chains)):
        problems.append(Problem(FILE, "altered", "-", None, None, f"model {model!r} has events but no chain anchor and head"))
    return problems


def _check_row_index(report: Report, records: list[StoredRecord]) -> None:
    """Name the first row of a stream whose index (model, sequence, type) is not what
    its bytes say, and rows that are out of log order (offsets only grow inside a
    partition)."""
    last_offset: dict[int, int] = {}
    for record in records:
        stream = report.streams.get(record.model)
        problem = None
        previous = last_offset.get(record.position.partition)
        if previous is not None and record.position.offset <= previous:
            problem = ("reordered", f"offset {record.position.offset} comes after offset {previous} of its partition")
        last_offset[record.position.partition] = record.position.offset
        try:
            event = codec.decode(record.data)
        except DecodeError:
            event = None  # the chain check names undecodable bytes
        if problem is None and event is not None and (
            (event.model, event.sequence, event.event_type) != (record.model, record.sequence, record.event_type)
        ):
            problem = (
                "altered",
                f"the file lists it as {record.event_type} #{record.sequence} of {record.model!r}; "
                f"its bytes are {event.event_type} #{event.sequence} of {event.model!r}",
            )
        if problem is None or stream is None:
            continue
        if stream.problem is not None and (stream.problem.sequence or 0) <= (record.sequence or 0):
            continue
        stream.problem = Problem(record.model, problem[0], str(record.position), record.sequence, None, problem[1])


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


def _tree_rows(path: Path) -> tuple[dict, list[tuple[int, bytes]]]:
    """The metadata and every row's (partition, stored bytes), in file order."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    with handle:
        try:
            reader = fastavro.reader(handle)
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types on a file that is no Avro container
            raise _unreadable(path, exc) from exc
        try:
            metadata = dict(reader.metadata)
            if metadata.get("ledger.format") != FORMAT:
                raise InputError(f"{path} is not a ledger evidence file (no {FORMAT} marker)")
            rows = [(int(row["partition"]), bytes(row["data"])) for row in reader]
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - fastavro, zlib and json raise many types on a damaged file
            raise DecodeError(f"{path} is damaged: {type(exc).__name__}: {exc}") from exc
    return metadata, rows


def file_checkpoints(path: Path) -> list[str]:
    """The signed checkpoints an evidence file carries (texts)."""
    metadata, _rows = _tree_rows(Path(path))
    try:
        found = json.loads(metadata.get("ledger.checkpoints", "[]"))
    except ValueError as exc:
        raise DecodeError(f"{path} has damaged checkpoint metadata: {exc}") from exc
    return [str(text) for text in found] if isinstance(found, list) else []


def verify_file_against(path: Path, saved_texts, log_key, *, witness_keys=(), min_witnesses: int = 0) -> list:
    """Prove an (unfiltered) evidence file holds the very records the saved
    checkpoints cover: rebuild each partition's Merkle tree from the file's
    stored bytes and check the consistency proof from the saved checkpoint, and
    from it to the checkpoints the file carries. The file's chains are checked
    too (:func:`verify_file`), to name the events."""
    from ledger import checkpoints as cp

    path = Path(path)
    witness_keys = list(witness_keys)
    saved_list = [cp.parse_signed(text, "the saved checkpoint") for text in saved_texts]
    if not saved_list:
        raise InputError("no checkpoint to verify against")
    for saved in saved_list:
        cp.require_signatures(saved, log_key, witness_keys, min_witnesses)
    metadata, rows = _tree_rows(path)
    try:
        tree_meta = json.loads(metadata.get("ledger.tree", "null"))
        carried = json.loads(metadata.get("ledger.checkpoints", "[]"))
    except ValueError as exc:
        raise DecodeError(f"{path} has damaged tree metadata: {exc}") from exc
    if not isinstance(tree_meta, dict):
        raise InputError(f"{path} was written without tree metadata: export it again to check it against a checkpoint")
    if not tree_meta.get("complete"):
        raise InputError(
            f"{path} is a filtered export (--model/--since/--until): only a whole-log export can be "
            "proved against a checkpoint"
        )
    report = verify_file(path)
    checks = []
    for saved in saved_list:
        partition = cp.partition_of(saved.checkpoint.origin)
        try:
            absent = {
                int(i): bytes.fromhex(h)
                for i, h in ((tree_meta.get("partitions") or {}).get(str(partition)) or {}).get("absent", {}).items()
            }
        except (ValueError, AttributeError, TypeError) as exc:
            raise DecodeError(f"{path} has damaged tree metadata: {exc}") from exc
        hashes: list[bytes] = []
        for part, data in rows:
            if part != partition:
                continue
            while len(hashes) in absent:
                hashes.append(absent.pop(len(hashes)))
            hashes.append(merkle.leaf_hash(data))
        while len(hashes) in absent:
            hashes.append(absent.pop(len(hashes)))
        tree = merkle.Tree()
        try:
            tree.append_hashes(hashes)
        except ValueError as exc:
            raise DecodeError(f"{path} has damaged tree metadata: {exc}") from exc
        check = cp.LogCheck(saved.checkpoint, tree.size)
        checks.append(check)
        try:
            cp.check_extends(tree, saved.checkpoint, what="the file")
        except cp.Inconsistent as exc:
            check.problems.append(str(exc))
        else:
            for text in carried if isinstance(carried, list) else []:
                try:
                    own = cp.parse_signed(str(text), "a checkpoint in the file")
                except InputError as exc:
                    check.problems.append(str(exc))
                    continue
                if own.checkpoint.origin != saved.checkpoint.origin:
                    continue
                if not own.note.signed_by(log_key):
                    check.problems.append(f"the file's checkpoint {own.checkpoint.origin}@{own.checkpoint.size} is not signed by the log key")
                    continue
                other = own.checkpoint
                low, high = sorted((saved.checkpoint, other), key=lambda c: c.size)
                problem = None
                if high.size > tree.size:
                    problem = f"it covers {high.size} records, the file holds {tree.size}"
                else:
                    try:
                        merkle.verify_consistency(low.size, high.size, tree.consistency_proof(low.size, high.size), low.root, high.root)
                    except merkle.ProofError as exc:
                        problem = str(exc)
                if problem:
                    check.problems.append(
                        f"the file's checkpoint {other.origin}@{other.size} is not consistent with the saved one and the records: {problem}"
                    )
                else:
                    check.latest = other
        check.chain_problems = [
            p for p in report.problems if p.position == "-" or p.position.startswith(f"{partition}:")
        ]
    return checks
