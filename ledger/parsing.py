"""What users type, parsed in one place: model names, ``MODEL@VERSION``, instants
(``--as-of``, ``--since``, ``--until``), log positions and environments.

Pure: no I/O, no click. Every parser returns a value or raises
:class:`ledger.errors.InputError` with one line that names what was typed and the
form expected; the CLI maps that to exit 2. Numbers are ASCII digits only, with no
sign or spaces inside (``int`` would take ``+3``, ``٣`` or ``1_000``).

Instants: ``2026-03-03`` is the start of that day in UTC; ``2026-03-03T10:00``
without a zone is read as UTC; ``2026-03-03T10:00:00+01:00`` and a trailing ``Z``
keep their zone.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone

from ledger.errors import InputError

MAX_VERSION = 2**31 - 1
"""Versions are Avro ``int``s."""
# Kafka's partitions are 32-bit and its offsets 64-bit signed integers, as are the
# columns that store them.
MAX_PARTITION = 2**31 - 1
MAX_OFFSET = 2**63 - 1

ENVIRONMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
"""What an environment name may be (the events hold the same rule)."""


def _digits(text: str) -> int | None:
    """``text`` as a whole number when it is ASCII digits and nothing else."""
    if text and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_model(text: str) -> str:
    """A model name as typed: matched exactly, so it is not stripped; it must say
    something and hold no NUL (PostgreSQL text cannot)."""
    if "\x00" in text:
        raise InputError("a model name must not contain a NUL character")
    if not text.strip():
        raise InputError("name a model: MODEL or MODEL@VERSION")
    return text


def parse_target(text: str) -> tuple[str, int | None]:
    """``churn`` → (churn, None); ``churn@3`` → (churn, 3)."""
    parse_model(text)
    if "@" not in text:
        return text, None
    model, _, version = text.rpartition("@")
    number = _digits(version)
    if not model.strip() or number is None:
        raise InputError(f"malformed {text!r}: use MODEL or MODEL@VERSION, e.g. churn@3")
    if not 1 <= number <= MAX_VERSION:
        raise InputError(f"version {version} is out of range: versions run from 1 to {MAX_VERSION}")
    return model, number


def parse_model_version(text: str) -> tuple[str, int]:
    """``churn@3`` → (churn, 3); the version is required."""
    parse_model(text)
    if "@" not in text:
        raise InputError(f"expected MODEL@VERSION (e.g. churn@3), not {text!r}")
    model, version = parse_target(text)
    assert version is not None
    return model, version


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """The instant ``text`` names, as an aware UTC datetime.

    With ``end_of_day`` a bare date means the last microsecond of that day (for
    ``--until 2026-03-03`` to include the whole day)."""
    value = text.strip()
    if not value or "\x00" in value:
        raise InputError(f"malformed time {text!r}: use an ISO-8601 date or datetime, e.g. 2026-03-03T10:00:00Z")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.max if end_of_day else time.min)
            return moment.replace(tzinfo=timezone.utc)
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"malformed time {text!r}: use an ISO-8601 date or datetime, e.g. 2026-03-03T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # e.g. 0001-01-01T00:00+14:00: in UTC it falls before year 1.
        raise InputError(f"time {text!r} is out of range: in UTC it falls outside years 1 to 9999") from None


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since``/``--until`` as instants; a bare ``--until`` date is the whole day."""
    start = parse_instant(since) if since is not None else None
    end = parse_instant(until, end_of_day=True) if until is not None else None
    if start and end and start > end:
        raise InputError("--since is after --until")
    return start, end


def parse_positions(text: str) -> dict[int, int]:
    """``"0:57"`` or ``"0:57,1:12,2:0"`` → ``{0: 57, 1: 12, 2: 0}``."""
    positions: dict[int, int] = {}
    for part in text.split(","):
        part = part.strip()
        partition, sep, offset = part.partition(":")
        p, o = _digits(partition.strip()), _digits(offset.strip())
        if not sep or p is None or o is None:
            if sep and (partition.strip().startswith("-") or offset.strip().startswith("-")):
                raise InputError(f"log position {part!r}: partition and offset are not negative")
            raise InputError(
                f"malformed log position {part!r} in {text!r}: use PARTITION:OFFSET, e.g. 0:57 or 0:57,1:12"
            )
        if p > MAX_PARTITION or o > MAX_OFFSET:
            raise InputError(
                f"log position {part!r} is out of range: partitions run to {MAX_PARTITION}, offsets to {MAX_OFFSET}"
            )
        if p in positions:
            raise InputError(f"log position {text!r} names partition {p} twice")
        positions[p] = o
    return positions


def parse_environment(text: str) -> str:
    """An environment name: a letter or digit, then up to 63 of letters, digits, ``._-``."""
    if not re.fullmatch(ENVIRONMENT_PATTERN, text):
        raise InputError(
            f"malformed environment {text!r}: a letter or digit, then up to 63 letters, digits, '.', '_' or '-'"
        )
    return text


def validation_message(exc, whole: str = "event") -> str:
    """A pydantic ``ValidationError`` as one line: ``field: problem; field: problem``
    (``whole`` names the object when the problem is not in one field)."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or whole
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
