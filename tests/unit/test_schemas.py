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
    expected = json.loads(path.with_suffix(".json").read_text())
    assert event.model_dump(mode="json") == expected


def _copy_catalogue(tmp_path):
    import shutil

    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    shutil.copytree(target / "v1", target / "v2")
    return target


def _state(directory):
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_publishing_a_version_that_only_changes_docs_is_refused_and_writes_nothing(tmp_path):
    # Same parsing canonical form, different text: the catalogue could no longer
    # load (two schemas under one fingerprint) and every read would fail.
    directory = _copy_catalogue(tmp_path)
    source = directory / "v2" / "io.mlledger.events.ModelRetired.avsc"
    schema = json.loads(source.read_text())
    schema["doc"] = schema.get("doc", "") + " (reworded)"
    source.write_text(json.dumps(schema, indent=2))
    before = _state(directory)

    with pytest.raises(SchemaError, match="ModelRetired v2.*same fingerprint as ModelRetired v1"):
        catalogue.publish(2, directory)

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
    source = directory / "v2" / "io.mlledger.events.ModelRetired.avsc"
    schema = json.loads(source.read_text())
    schema["fields"].append({"name": "ticket", "type": ["null", "string"], "default": None, "doc": "Change ticket."})
    source.write_text(json.dumps(schema, indent=2))

    added = catalogue.publish(2, directory)

    assert "ModelRetired" in {a["event_type"] for a in added}
    loaded = catalogue.load(directory)
    assert loaded.latest("ModelRetired").version == 2
    assert _compatible(loaded.latest("ModelRetired").text, CAT.latest("ModelRetired").text)
