"""The published schemas: unchanged, compatible across versions, in step with
the event model, and every version's stored bytes still decodable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from ledger import catalogue, codec
from ledger.errors import SchemaError
from ledger.events import BY_TYPE, Event

SCHEMAS = catalogue.schema_dir()
INDEX = json.loads((SCHEMAS / "catalogue.json").read_text())["schemas"]
SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
CAT = catalogue.default()
NEXT = max(e["version"] for e in INDEX) + 1
"""The version number the next publication would take."""


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: f"{e['event_type']}.v{e['version']}")
def test_published_schema_is_unchanged(entry):
    text = (SCHEMAS / entry["file"]).read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == entry["sha256"], "a published schema was edited"
    assert catalogue.fingerprint_of(json.loads(text)).hex() == entry["fingerprint"]


def test_every_full_schema_is_catalogued():
    listed = {e["file"] for e in INDEX}
    on_disk = {f"full/{p.name}" for p in (SCHEMAS / "full").glob("*.avsc")}
    assert on_disk == listed


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: f"{e['event_type']}.v{e['version']}")
def test_full_schema_is_its_source_with_the_envelope_inlined(entry):
    expanded = catalogue.expand(SCHEMAS / f"v{entry['version']}", entry["event_type"])
    assert json.loads((SCHEMAS / entry["file"]).read_text()) == expanded


@pytest.mark.parametrize("entry", INDEX, ids=lambda e: f"{e['event_type']}.v{e['version']}")
def test_fingerprint_agrees_with_the_apache_avro_library(entry):
    """Apache avro (Python) computes CRC-64-AVRO independently. Handed our parsing
    canonical form it must find the same canonical form and fingerprint.

    (Handed the full file it does not: avro 1.12 keeps ``{"type": "string"}`` for a
    logical type where the specification's [PRIMITIVES]/[STRIP] rules, Java's
    SchemaNormalization and fastavro write ``"string"`` — see catalogue.py.)"""
    from fastavro.schema import to_parsing_canonical_form

    canonical = to_parsing_canonical_form(json.loads((SCHEMAS / entry["file"]).read_text()))
    parsed = avro.schema.parse(canonical)
    assert parsed.canonical_form == canonical
    assert parsed.fingerprint().hex() == entry["fingerprint"]


def _compatible(reader_text: str, writer_text: str) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(reader_text), avro.schema.parse(writer_text)
    )
    return result.compatibility is SchemaCompatibilityType.compatible


@pytest.mark.parametrize("entry", CAT.entries(), ids=lambda e: f"{e.event_type}.v{e.version}")
def test_each_version_and_the_current_one_read_each_other(entry):
    current = CAT.latest(entry.event_type)
    assert _compatible(current.text, entry.text), "current schema cannot read this version"
    assert _compatible(entry.text, current.text), "this version cannot read the current schema"


def test_the_compatibility_check_can_fail():
    """Guard for the test above: a rename without alias must be refused."""
    entry = CAT.latest("ModelDeployed")
    renamed = entry.text.replace('"environment"', '"target_environment"')
    assert not _compatible(renamed, entry.text)


def test_two_schemas_under_one_fingerprint_are_refused():
    entry = CAT.latest("ModelDeployed")
    doc_changed = json.loads(entry.text)
    doc_changed["doc"] = "same canonical form, different text"
    twin = catalogue.SchemaEntry(
        entry.event_type, entry.version + 1, catalogue.fingerprint_of(doc_changed), json.dumps(doc_changed), doc_changed
    )
    assert twin.fingerprint == entry.fingerprint
    with pytest.raises(SchemaError, match="share fingerprint"):
        catalogue.Catalogue([entry, twin])


def _fields_of(schema: dict) -> set[str]:
    names = set()
    for field in schema["fields"]:
        if field["name"] == "envelope":
            names |= {f["name"] for f in field["type"]["fields"]}
        else:
            names.add(field["name"])
    return names


@pytest.mark.parametrize("event_type", sorted(BY_TYPE))
def test_event_model_and_current_schema_have_the_same_fields(event_type):
    schema = CAT.latest(event_type).schema
    assert _fields_of(schema) == set(BY_TYPE[event_type].model_fields) | {"event_type"}
    assert schema["name"] == event_type


def test_every_event_type_has_a_schema_and_a_sample():
    assert set(CAT.event_types()) == set(BY_TYPE)
    for entry in CAT.entries():
        assert (SAMPLES / f"v{entry.version}" / f"{entry.event_type}.bin").exists(), (
            f"no stored sample for {entry.event_type} v{entry.version}: run tests/fixtures/make_samples.py"
        )


SAMPLE_FILES = sorted(SAMPLES.glob("v*/*.bin"))


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_stored_sample_bytes_stay_decodable(path):
    event = codec.decode(path.read_bytes())
    assert isinstance(event, Event)
    written = json.loads(path.with_suffix(".json").read_text())
    decoded = event.model_dump(mode="json")
    # What the bytes held, unchanged; fields added by later schema versions read as
    # their defaults (ModelDeployed v1 bytes: traffic_percent 100).
    assert {k: v for k, v in decoded.items() if k in written} == written
    added = set(decoded) - set(written)
    assert {k: decoded[k] for k in added} == {k: type(event).model_fields[k].default for k in added}
    assert isinstance(event, BY_TYPE[path.stem])


def test_v1_bytes_of_a_deployment_decode_into_the_v2_model():
    v1 = (SAMPLES / "v1" / "ModelDeployed.bin").read_bytes()
    v2 = (SAMPLES / "v2" / "ModelDeployed.bin").read_bytes()
    assert v1[2:10] == CAT.by_fingerprint(v1[2:10]).fingerprint and CAT.by_fingerprint(v1[2:10]).version == 1
    assert CAT.by_fingerprint(v2[2:10]).version == 2 < CAT.latest("ModelDeployed").version
    old, new = codec.decode(v1), codec.decode(v2)
    assert (old.traffic_percent, new.traffic_percent) == (100, 25)
    # Re-encoding writes the current version: the old bytes are never rewritten.
    assert codec.encode(old).fingerprint == CAT.latest("ModelDeployed").fingerprint


@pytest.mark.parametrize("version", [1, 2])
def test_apache_avro_reads_both_versions_of_a_deployment(version):
    import io

    import avro.io

    data = (SAMPLES / f"v{version}" / "ModelDeployed.bin").read_bytes()
    writer = CAT.by_fingerprint(data[2:10])
    reader = CAT.latest("ModelDeployed")
    decoder = avro.io.BinaryDecoder(io.BytesIO(data[10:]))
    record = avro.io.DatumReader(avro.schema.parse(writer.text), avro.schema.parse(reader.text)).read(decoder)
    written = json.loads((SAMPLES / f"v{version}" / "ModelDeployed.json").read_text())
    assert record["environment"] == written["environment"]
    assert record["envelope"]["event_id"] == written["event_id"]
    assert record["traffic_percent"] == written.get("traffic_percent", 100)


@pytest.mark.parametrize("event_type", sorted(BY_TYPE))
def test_older_bytes_read_as_recorded_by_nobody_and_v4_bytes_keep_the_recording_principal(event_type):
    # v4 added the envelope's recorded_by to every event type: bytes written before
    # it decode as recorded by the actor itself (None), v4 bytes keep the principal.
    older = sorted(p for p in SAMPLES.glob(f"v*/{event_type}.bin") if p.parent.name != "v4")
    assert older, f"no pre-v4 sample of {event_type}"
    for path in older:
        event = codec.decode(path.read_bytes())
        assert event.recorded_by is None and event.actor == json.loads(path.with_suffix(".json").read_text())["actor"]
    v4 = (SAMPLES / "v4" / f"{event_type}.bin").read_bytes()
    assert CAT.by_fingerprint(v4[2:10]).version == 4 == CAT.latest(event_type).version
    assert codec.decode(v4).recorded_by == "pipeline-runner"


@pytest.mark.parametrize("event_type", sorted(BY_TYPE))
def test_a_reader_that_knows_only_the_previous_version_reads_v4_bytes(event_type):
    # An unupgraded consumer (Apache avro, with the newest schema it knew before v4)
    # reads today's bytes: recorded_by is skipped, everything else is there.
    import io

    import avro.io

    previous = max((e for e in CAT.entries() if e.event_type == event_type and e.version < 4), key=lambda e: e.version)
    data = (SAMPLES / "v4" / f"{event_type}.bin").read_bytes()
    writer = CAT.by_fingerprint(data[2:10])
    decoder = avro.io.BinaryDecoder(io.BytesIO(data[10:]))
    record = avro.io.DatumReader(avro.schema.parse(writer.text), avro.schema.parse(previous.text)).read(decoder)
    written = json.loads((SAMPLES / "v4" / f"{event_type}.json").read_text())
    assert "recorded_by" not in record["envelope"]
    assert (record["envelope"]["event_id"], record["envelope"]["actor"]) == (written["event_id"], written["actor"])


def _copy_catalogue(tmp_path):
    import shutil

    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    shutil.copytree(target / "v1", target / f"v{NEXT}")
    return target


def _state(directory):
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_publishing_a_version_that_only_changes_docs_is_refused_and_writes_nothing(tmp_path):
    # Same parsing canonical form, different text: the catalogue could no longer
    # load (two schemas under one fingerprint) and every read would fail.
    directory = _copy_catalogue(tmp_path)
    source = directory / f"v{NEXT}" / "io.mlledger.events.ModelRetired.avsc"
    schema = json.loads(source.read_text())
    schema["doc"] = schema.get("doc", "") + " (reworded)"
    source.write_text(json.dumps(schema, indent=2))
    before = _state(directory)

    with pytest.raises(SchemaError, match=f"ModelRetired v{NEXT}.*same fingerprint as ModelRetired v1"):
        catalogue.publish(NEXT, directory)

    assert _state(directory) == before
    catalogue.load(directory)


def test_republishing_a_published_version_is_refused_and_writes_nothing(tmp_path):
    directory = _copy_catalogue(tmp_path)
    for path in (directory / "v1").glob("*.avsc"):
        path.write_text(path.read_text().replace('"doc": "', '"doc": "Edited: ', 1))
    before = _state(directory)

    with pytest.raises(SchemaError, match="already published"):
        catalogue.publish(1, directory)

    assert _state(directory) == before


def test_publishing_a_new_version_adds_it_to_the_catalogue(tmp_path):
    directory = _copy_catalogue(tmp_path)
    source = directory / f"v{NEXT}" / "io.mlledger.events.ModelRetired.avsc"
    schema = json.loads(source.read_text())
    schema["fields"].append({"name": "ticket", "type": ["null", "string"], "default": None, "doc": "Change ticket."})
    source.write_text(json.dumps(schema, indent=2))

    added = catalogue.publish(NEXT, directory)

    assert "ModelRetired" in {a["event_type"] for a in added}
    loaded = catalogue.load(directory)
    assert loaded.latest("ModelRetired").version == NEXT
    assert _compatible(loaded.latest("ModelRetired").text, CAT.latest("ModelRetired").text)


def _next_of(directory, event_type, change):
    """``directory``'s schemas with a next version of ``event_type`` only: its
    current source changed by ``change``."""
    import shutil

    current = CAT.latest(event_type).version
    (directory / f"v{NEXT}").mkdir(exist_ok=True)
    shutil.copy(directory / f"v{current}" / f"{catalogue.ENVELOPE}.avsc", directory / f"v{NEXT}")
    source = directory / f"v{current}" / f"{catalogue.EVENTS_NAMESPACE}.{event_type}.avsc"
    schema = change(json.loads(source.read_text()))
    (directory / f"v{NEXT}" / source.name).write_text(json.dumps(schema, indent=2))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        pytest.param(
            lambda s: {**s, "fields": [*s["fields"], {"name": "ticket", "type": "string"}]},
            "ticket", id="a-field-without-default",
        ),
        pytest.param(
            lambda s: {**s, "fields": [{**f, "type": "int"} if f["name"] == "environment" else f for f in s["fields"]]},
            "environment", id="a-field-changes-type",
        ),
        pytest.param(
            lambda s: {**s, "fields": [f for f in s["fields"] if f["name"] != "environment"]},
            "environment", id="a-field-without-default-removed",
        ),
    ],
)
def test_publishing_an_incompatible_version_is_refused_and_writes_nothing(tmp_path, change, why):
    # The project's own check (catalogue.publish), not only this test file's: a v2
    # that cannot read v1 bytes, or whose bytes v1 readers cannot read, is never
    # published.
    import shutil

    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory)
    _next_of(directory, "ModelDeployed", change)
    before = _state(directory)

    with pytest.raises(SchemaError, match=rf"ModelDeployed v{NEXT} is not compatible with ModelDeployed v1.*{why}"):
        catalogue.publish(NEXT, directory)

    assert _state(directory) == before
