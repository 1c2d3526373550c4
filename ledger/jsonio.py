"""JSON a person or a script can trust, in and out.

In: :func:`load_object` reads one JSON object strictly — UTF-8 (a byte order mark
allowed), no duplicate keys (the standard library keeps the last one silently, so
``{"passed": false, "passed": true}`` would read as passed), no ``NaN``/``Infinity``
and no number too large to be finite (``1e999``), nesting at most
:data:`MAX_DEPTH` deep. Each refusal is one :class:`~ledger.errors.InputError` line.

Out: :func:`dumps` never writes ``NaN`` or ``Infinity``, which are not JSON (RFC
8259 §6) and which strict parsers refuse: a non-finite float (an event stored
before the ledger refused them) is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"``, the convention of Protocol Buffers' JSON mapping.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ledger.errors import InputError

MAX_DEPTH = 32
"""Deepest nesting an input may have: an event is at most four levels deep."""


def _refuse_constant(name: str):
    raise InputError(f"malformed JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"malformed JSON: the number {text[:40]} is too large to be finite")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InputError(f"malformed JSON: the key {json.dumps(key)} appears twice in one object")
        seen[key] = value
    return seen


def _depth_ok(text: str) -> None:
    # Counted on the text, outside strings, before parsing: the parser recurses
    # once per level and a deep enough document exhausts the stack.
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return  # cannot nest deeper than it has brackets (the walk below is ~50 µs per event)
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"malformed JSON: nested more than {MAX_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1


def loads(data: bytes | str) -> Any:
    """Parse ``data`` strictly (see the module docstring)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"the JSON is not UTF-8 text: {exc}") from exc
    _depth_ok(data)
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}") from exc
    except RecursionError:  # pragma: no cover - _depth_ok stops it first
        raise InputError("malformed JSON: nested too deep") from None


def load_object(data: bytes | str, what: str = "the event's fields") -> dict:
    """A JSON object holding ``what``."""
    value = loads(data)
    if not isinstance(value, dict):
        raise InputError(f"the JSON must be an object holding {what}")
    return value


def _portable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v) for v in value]
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON any parser reads (no NaN/Infinity; other values as text)."""
    return json.dumps(_portable(value), indent=indent, default=str, allow_nan=False)
