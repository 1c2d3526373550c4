"""The schema catalogue: every published writer schema, keyed by fingerprint.

``schemas/`` holds, per published version N:

* ``vN/io.mlledger.Envelope.avsc`` and ``vN/io.mlledger.events.<Type>.avsc`` — the
  source schemas, one per event type, the envelope referenced by name;
* ``full/<Type>.vN.avsc`` — the same event's complete writer schema with the
  envelope inlined, self-contained so any Avro library can decode with it alone;
* ``catalogue.json`` — one entry per full schema: event type, version, file,
  CRC-64-AVRO fingerprint and the SHA-256 of the file's text.

Published files are never edited: a test recomputes every fingerprint and hash
against ``catalogue.json``. A new version is added with :func:`publish`, which
refuses one that is not compatible both ways with every published version of its
type (new readers read old bytes, old readers read new bytes), checked with the
Apache ``avro`` library's schema-resolution checker. The workflow is in
``docs/schema-evolution.md``.

Avro's parsing canonical form drops ``doc`` and ``default``, so two schemas that
differ only there share a fingerprint; the catalogue refuses to hold two different
texts under one fingerprint.

Fingerprints follow the specification's parsing canonical form, as Java's
``SchemaNormalization`` and fastavro compute it. The Apache ``avro`` Python package
(1.12) differs on logical types — it keeps ``{"type": "string"}`` where the spec's
[PRIMITIVES] and [STRIP] rules give ``"string"`` — so its ``Schema.fingerprint()`` of a
full schema file is not the one in our messages; its CRC-64 of our canonical form is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

from ledger.errors import SchemaError

ENVELOPE = "io.mlledger.Envelope"
EVENTS_NAMESPACE = "io.mlledger.events"


def schema_dir() -> Path:
    """The ``schemas/`` directory, inside the installed package."""
    return Path(str(resources.files("ledger") / "schemas"))


def fingerprint_of(schema: dict) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of the schema's parsing canonical form,
    in the byte order Avro single-object encoding writes it."""
    canonical = to_parsing_canonical_form(schema)
    return bytes.fromhex(_fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaEntry:
    event_type: str
    version: int
    fingerprint: bytes
    text: str
    schema: dict
    """The schema as JSON (not parsed): what an Avro library is handed."""

    @property
    def parsed(self):
        return _parsed(self.text)


@cache
def _parsed(text: str):
    return parse_schema(json.loads(text))


class Catalogue:
    def __init__(self, entries: list[SchemaEntry]):
        self._by_fingerprint: dict[bytes, SchemaEntry] = {}
        self._latest: dict[str, SchemaEntry] = {}
        for entry in entries:
            known = self._by_fingerprint.get(entry.fingerprint)
            if known is not None and known.text != entry.text:
                raise SchemaError(
                    f"two different schemas share fingerprint {entry.fingerprint.hex()}: "
                    f"{known.event_type} v{known.version} and "
                    f"{entry.event_type} v{entry.version}"
                )
            self._by_fingerprint[entry.fingerprint] = entry
            latest = self._latest.get(entry.event_type)
            if latest is None or entry.version > latest.version:
                self._latest[entry.event_type] = entry

    def by_fingerprint(self, fingerprint: bytes) -> SchemaEntry | None:
        return self._by_fingerprint.get(fingerprint)

    def latest(self, event_type: str) -> SchemaEntry:
        try:
            return self._latest[event_type]
        except KeyError:
            raise SchemaError(f"no schema published for event type {event_type!r}") from None

    def entries(self) -> list[SchemaEntry]:
        return sorted(self._by_fingerprint.values(), key=lambda e: (e.event_type, e.version))

    def event_types(self) -> list[str]:
        return sorted(self._latest)


def load(directory: Path | None = None) -> Catalogue:
    directory = directory or schema_dir()
    index = json.loads((directory / "catalogue.json").read_text())
    entries = []
    for item in index["schemas"]:
        text = (directory / item["file"]).read_text()
        schema = json.loads(text)
        entries.append(
            SchemaEntry(
                event_type=item["event_type"],
                version=int(item["version"]),
                fingerprint=fingerprint_of(schema),
                text=text,
                schema=schema,
            )
        )
    return Catalogue(entries)


@cache
def default() -> Catalogue:
    return load()


# --- publishing ---------------------------------------------------------------


def expand(source_dir: Path, event_type: str) -> dict:
    """The full writer schema of ``event_type``: its source with the envelope inlined."""
    event = json.loads((source_dir / f"{EVENTS_NAMESPACE}.{event_type}.avsc").read_text())
    envelope = json.loads((source_dir / f"{ENVELOPE}.avsc").read_text())
    fields = []
    for field in event["fields"]:
        if field["type"] == ENVELOPE:
            field = {**field, "type": envelope}
        fields.append(field)
    return {**event, "fields": fields}


def incompatibilities(reader_text: str, writer_text: str) -> list[str]:
    """Why a reader with ``reader_text`` cannot read data written with
    ``writer_text`` (Avro schema resolution), or ``[]`` when it can."""
    try:
        import avro.schema
        from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    except ImportError as exc:  # a publishing tool's need, not a reader's
        raise SchemaError("publishing a schema version needs the Apache avro package: pip install avro") from exc
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(reader_text), avro.schema.parse(writer_text)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    names = [f["name"] for f in json.loads(reader_text).get("fields", [])]

    def named(location: str) -> str:
        # "/fields/1/type" → "/fields/environment/type": the top level's field names
        parts = location.split("/")
        if len(parts) > 2 and parts[1] == "fields" and parts[2].isdigit() and int(parts[2]) < len(names):
            parts[2] = names[int(parts[2])]
        return "/".join(parts)

    where = ", ".join(sorted({named(str(loc)) for loc in result.locations or ()} - {"/"}))
    return [f"{message}{f' (at {where})' if where else ''}" for message in sorted(result.messages)]


def _check_compatible(event_type: str, version: int, text: str, earlier: list[tuple[int, str]]) -> None:
    for old_version, old_text in earlier:
        problems = [f"reading v{old_version} bytes: {p}" for p in incompatibilities(text, old_text)]
        problems += [f"v{old_version} readers reading v{version} bytes: {p}" for p in incompatibilities(old_text, text)]
        if problems:
            raise SchemaError(
                f"{event_type} v{version} is not compatible with {event_type} v{old_version}: "
                + "; ".join(problems)
                + " (add fields with a default, never rename without an alias or change a type)"
            )


def publish(version: int, directory: Path | None = None) -> list[dict]:
    """Write ``full/<Type>.v<version>.avsc`` from ``v<version>/`` and add them to
    ``catalogue.json``. Refuses to overwrite anything already published."""
    directory = directory or schema_dir()
    index_path = directory / "catalogue.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemas": []}
    published = {(s["event_type"], s["version"]) for s in index["schemas"]}
    known = {
        bytes.fromhex(s["fingerprint"]): (s, (directory / s["file"]).read_text()) for s in index["schemas"]
    }
    source = directory / f"v{version}"
    added = []
    pending: list[tuple[str, str]] = []
    # Everything is checked before anything is written.
    for path in sorted(source.glob(f"{EVENTS_NAMESPACE}.*.avsc")):
        event_type = path.name[len(EVENTS_NAMESPACE) + 1 : -len(".avsc")]
        if (event_type, version) in published:
            raise SchemaError(f"{event_type} v{version} is already published; add a new version")
        schema = expand(source, event_type)
        parse_schema(schema)  # refuse an invalid schema before writing anything
        text = json.dumps(schema, indent=2) + "\n"
        twin = known.get(fingerprint_of(schema))
        if twin is not None and twin[1] != text:
            raise SchemaError(
                f"{event_type} v{version} has the same fingerprint as {twin[0]['event_type']} "
                f"v{twin[0]['version']} but a different text (only doc, aliases, defaults or "
                "logical types differ): one fingerprint must name one schema"
            )
        earlier = [
            (s["version"], (directory / s["file"]).read_text())
            for s in index["schemas"]
            if s["event_type"] == event_type and s["version"] < version
        ]
        _check_compatible(event_type, version, text, earlier)
        pending.append((event_type, text))
    for event_type, text in pending:
        schema = json.loads(text)
        relative = f"full/{event_type}.v{version}.avsc"
        (directory / "full").mkdir(exist_ok=True)
        (directory / relative).write_text(text)
        entry = {
            "event_type": event_type,
            "version": version,
            "file": relative,
            "fingerprint": fingerprint_of(schema).hex(),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
        index["schemas"].append(entry)
        added.append(entry)
    index["schemas"].sort(key=lambda s: (s["event_type"], s["version"]))
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return added
