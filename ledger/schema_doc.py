"""What an operator needs to write an event's JSON, derived — never hand-written —
from the two sources of truth: the pydantic models of :mod:`ledger.events` (types,
whether a field is required, allowed values and bounds) and the published Avro
schemas (each field's doc). Examples come from :mod:`ledger.samples`.

Fields the ledger sets (``sequence``, ``prev_hash``, ``recorded_at``,
``replaced_version``) are left out: ``ledger emit`` refuses or ignores them.
``actor`` comes from ``--actor``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ledger import catalogue, samples
from ledger.client import event_class
from ledger.events import ApprovalRejected, Event

SET_BY_THE_LEDGER = frozenset({"sequence", "prev_hash", "recorded_at", "replaced_version", "event_type"})


@dataclass(frozen=True)
class FieldDoc:
    name: str
    """Dotted path; ``[]`` marks the items of a list."""
    type: str
    required: bool
    allowed: str
    """Allowed values or bounds, as a person reads them (empty when any value of the type)."""
    default: Any
    doc: str
    example: Any

    def as_dict(self) -> dict:
        return asdict(self)


def example(cls: type[Event]) -> Event:
    """A valid example event of ``cls`` (from :mod:`ledger.samples`)."""
    made = {
        "DataSnapshotted": lambda: samples.snapshot("churn"),
        "ModelTrained": lambda: samples.trained("churn", 2, parent_version=1),
        "ModelEvaluated": lambda: samples.evaluated("churn", 2),
        "ModelApproved": lambda: samples.approved("churn", 2),
        "ApprovalRejected": lambda: ApprovalRejected(model="churn", version=2, actor="bob", reason="below policy"),
        "ModelDeployed": lambda: samples.deployed("churn", 2),
        "DriftDetected": lambda: samples.drift("churn", 2),
        "ModelRetired": lambda: samples.retired("churn", 1),
        "FeedbackRecorded": lambda: samples.feedback("churn", 2),
        "PerformanceDegraded": lambda: samples.degraded("churn", "6f1c1b1e-3a8e-4c1e-9a57-2f0c9d1e4b7a", 2),
    }[cls.event_type]
    return made()


def template(cli_name: str) -> dict:
    """An example JSON object for ``ledger emit TYPE`` (``actor`` goes to --actor)."""
    cls = event_class(cli_name)
    dumped = example(cls).model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if k not in SET_BY_THE_LEDGER | {"actor", "event_id"}}


def _avro_docs(schema: dict, prefix: str = "", docs: dict | None = None) -> dict[str, str]:
    docs = {} if docs is None else docs
    for f in schema.get("fields", ()):
        if f["name"] == "envelope":
            _avro_docs(f["type"], prefix, docs)
            continue
        path = f"{prefix}{f['name']}"
        if f.get("doc"):
            docs[path] = f["doc"]
        for branch in f["type"] if isinstance(f["type"], list) else [f["type"]]:
            if isinstance(branch, dict):
                if branch.get("type") == "record":
                    _avro_docs(branch, f"{path}.", docs)
                elif branch.get("type") == "array" and isinstance(branch.get("items"), dict):
                    _avro_docs(branch["items"], f"{path}[].", docs)
    return docs


def _resolve(node: dict, defs: dict) -> dict:
    if "$ref" in node:
        return defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _type_of(node: dict, defs: dict) -> tuple[str, bool, dict]:
    """(type text, nullable, the non-null node)."""
    branches = node.get("anyOf")
    nullable = False
    if branches:
        rest = [b for b in branches if b.get("type") != "null"]
        nullable = len(rest) < len(branches)
        node = rest[0] if len(rest) == 1 else {"anyOf": rest}
    node = {**_resolve(node, defs), **{k: v for k, v in node.items() if k != "$ref"}} if "$ref" in node else node
    kind = node.get("type")
    if kind == "array":
        items = _resolve(node.get("items", {}), defs)
        inner = items.get("title") if "properties" in items else _type_of(items, defs)[0]
        return f"list of {inner}", nullable, node
    if kind == "object" and "properties" not in node:
        values = _type_of(node.get("additionalProperties", {}), defs)[0] if node.get("additionalProperties") else "any"
        return f"object of string → {values}", nullable, node
    if "properties" in node:
        return f"object ({node.get('title', 'record')})", nullable, node
    names = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean (true/false)"}
    text = names.get(kind, kind or "any")
    if node.get("format") == "date-time":
        text = "time (ISO-8601 with a zone, e.g. 2026-03-03T10:00:00Z)"
    elif node.get("format") == "uuid":
        text = "UUID"
    return text, nullable, node


def _allowed(node: dict) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(str(v) for v in node["enum"]))
    if "const" in node:
        parts.append(f"exactly {node['const']}")
    for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{word} {node[key]}")
    if "minLength" in node or "maxLength" in node:
        parts.append(f"{node.get('minLength', 0)}–{node.get('maxLength', '…')} characters")
    if "minItems" in node:
        parts.append(f"at least {node['minItems']} item(s)")
    if "pattern" in node:
        parts.append(f"matching {node['pattern']}")
    return "; ".join(parts)


def _example_at(value: Any, path: list[str]) -> Any:
    for step in path:
        if isinstance(value, list):
            value = value[0] if value else None
        if step == "[]":
            continue
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _walk(schema: dict, defs: dict, docs: dict, sample: dict, prefix: list[str], out: list[FieldDoc]) -> None:
    required = set(schema.get("required", ()))
    for name, node in schema.get("properties", {}).items():
        if not prefix and name in SET_BY_THE_LEDGER:
            continue
        path = [*prefix, name]
        text, nullable, resolved = _type_of(node, defs)
        dotted = ".".join(path).replace(".[]", "[]")
        is_required = name in required
        default = None if is_required else node.get("default")
        if dotted == "event_id":
            default = "random; derived from the input when occurred_at is given (see ledger emit --help)"
        elif dotted == "occurred_at":
            default = "now"
        out.append(
            FieldDoc(
                name=dotted,
                type=text + (" or null" if nullable else ""),
                required=is_required,
                allowed=_allowed(resolved) or _allowed(node),
                default=default,
                doc=("from --actor: " if dotted == "actor" else "") + docs.get(dotted, ""),
                example=_example_at(sample, path),
            )
        )
        if "properties" in resolved:
            _walk(resolved, defs, docs, sample, path, out)
        elif resolved.get("type") == "array":
            items = _resolve(resolved.get("items", {}), defs)
            if "properties" in items:
                _walk(items, defs, docs, sample, [*path, "[]"], out)


def describe(cli_name: str) -> list[FieldDoc]:
    """Every field an emitter may give for ``ledger emit TYPE``."""
    cls = event_class(cli_name)
    schema = cls.model_json_schema()
    docs = _avro_docs(catalogue.default().latest(cls.event_type).schema)
    sample = example(cls).model_dump(mode="json")
    out: list[FieldDoc] = []
    _walk(schema, schema.get("$defs", {}), docs, sample, [], out)
    return out
