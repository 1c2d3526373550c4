"""Event ids a retry can reproduce.

A retry with the event id of the first try is recorded once (the log answers it as
"already recorded"). ``ledger emit`` reads its fields from a file, so a retry after a
time-out sends the same file: when that file says when the action happened
(``occurred_at``) and gives no ``event_id``, the id is derived from what the file
says — the event type, the actor and every field, in canonical JSON — so sending it
again cannot record the action twice. Two actions with the same fields at the same
instant are one action. Without ``occurred_at`` the action's time is "now", which a
retry cannot reproduce; the id is random and ``emit`` prints it to reuse.
"""

from __future__ import annotations

import json
import uuid

NAMESPACE = uuid.UUID("5d0b3f1e-8f5c-5a43-9c1e-6c656467e201")
"""Fixed namespace of the derived ids (UUID version 5, RFC 9562 §5.5)."""


def derived_id(event_type: str, actor: str, fields: dict) -> uuid.UUID:
    """The id of the action ``fields`` describe, the same for the same input."""
    canonical = json.dumps(
        {"event_type": event_type, "actor": actor, "fields": fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return uuid.uuid5(NAMESPACE, canonical)
