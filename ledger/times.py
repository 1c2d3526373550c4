"""Instants given on the command line: ISO-8601 dates and datetimes.

``2026-03-03`` is midnight UTC at the start of that day — in every option that
takes a time (``--as-of``, ``--since``, ``--until``) alike, so ``--until
2026-03-03`` stops at that midnight; ``2026-03-03T10:00`` without a zone is read as
UTC; ``2026-03-03T10:00:00+01:00`` and a trailing ``Z`` keep their zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone

from ledger.errors import InputError


def parse_instant(text: str) -> datetime:
    """The instant ``text`` names, as an aware UTC datetime (a bare date: midnight
    UTC at the start of that day)."""
    value = text.strip()
    if not value or "\x00" in value:
        raise InputError(f"malformed time {text!r}: use an ISO-8601 date or datetime, e.g. 2026-03-03T10:00:00Z")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.min)
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
