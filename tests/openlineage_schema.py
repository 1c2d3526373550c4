"""Validate OpenLineage events against the official JSON schemas (vendored under
tests/fixtures/openlineage, see SOURCE.md there) and the ledger's own facet schema
(schemas/openlineage/). Every facet is checked against the schema its _schemaURL
names; a facet whose schema is not known here is a failure, not a pass."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "tests" / "fixtures" / "openlineage").glob("*.json")) + sorted(
    (ROOT / "schemas" / "openlineage").glob("*.json")
)


def _registry() -> Registry:
    resources = []
    for path in FILES:
        document = json.loads(path.read_text(encoding="utf-8"))
        resources.append((document["$id"], Resource.from_contents(document)))
    return Registry().with_resources(resources)


REGISTRY = _registry()
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def _validate(instance, ref: str) -> list[str]:
    validator = Draft202012Validator({"$ref": ref}, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def _facets(event: dict):
    def of(holder, where):
        for name, facet in (holder or {}).items():
            yield f"{where}.{name}", facet

    yield from of(event.get("run", {}).get("facets"), "run")
    yield from of(event.get("job", {}).get("facets"), "job")
    if "dataset" in event:
        yield from of(event["dataset"].get("facets"), "dataset")
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side) or []):
            yield from of(dataset.get("facets"), f"{side}[{i}]")
            yield from of(dataset.get("inputFacets") or dataset.get("outputFacets"), f"{side}[{i}]")


def problems(event: dict) -> list[str]:
    """Everything wrong with ``event``: against the core schema (as a RunEvent,
    DatasetEvent or JobEvent, as its schemaURL says), then each facet."""
    kind = event.get("schemaURL", "").rpartition("/")[2]
    if kind not in ("RunEvent", "DatasetEvent", "JobEvent"):
        return [f"schemaURL {event.get('schemaURL')!r} names no OpenLineage event type"]
    found = _validate(event, f"{CORE}#/$defs/{kind}")
    for where, facet in _facets(event):
        url = facet.get("_schemaURL", "")
        base, _, pointer = url.partition("#")
        try:
            REGISTRY.get_or_retrieve(base)
        except Exception:  # noqa: BLE001 - unknown schema
            found.append(f"{where}: no known schema {url!r}")
            continue
        found += [f"{where}: {p}" for p in _validate(facet, url)]
    return found
