"""The quarantine: every record the projector could not read as an event, with its
position and the reason, so that a bad record neither stops the projector (no
crash loop) nor disappears (no silent skip). ``ledger verify`` reports the same
records from the raw log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from ledger.codec import HEADER_SIZE, MARKER
from projections import bulk
from projections.base import Item, Projection
from projections.tables import quarantine


def _fingerprint(item: Item) -> str | None:
    data = item.record.data
    if len(data) >= HEADER_SIZE and data[:2] == MARKER:
        return data[2:HEADER_SIZE].hex()
    return item.record.fingerprint.hex() if item.record.fingerprint else None


class Quarantine(Projection):
    name = "quarantine"
    wants_unreadable = True

    def apply(self, conn: Connection, items: Sequence[Item]) -> None:
        rows = [
            {
                "partition": item.partition,
                "offset": item.offset,
                "model": item.record.model or None,
                "reason": item.problem,
                "raw_length": len(item.record.data),
                "sha256": hashlib.sha256(item.record.data).hexdigest(),
                "fingerprint": _fingerprint(item),
                "event_type": item.record.event_type,
                "appended_at": item.at,
            }
            for item in items
            if item.event is None
        ]
        bulk.insert_ignore(conn, quarantine, rows)
