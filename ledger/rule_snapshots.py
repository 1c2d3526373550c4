"""A model stream's rule state, kept beside the log so that a writer's first append
does not fold the stream's whole history.

A snapshot is the :class:`ledger.rules.ModelState` after event ``sequence``, bound to
that event's hash (the chain head it was computed at). The append path (:mod:`ledger.append`)
uses one only after checking that the log still holds, at that sequence, an event
whose stored bytes hash to the snapshot's hash; it then folds — with every chain
and rule check — only the events after it. Anything else (no snapshot, another
head, a state that does not parse or names another stream) falls back to folding
the whole stream. What that leaves to ``ledger verify``: see
``docs/kafka-write-path.md`` ("The writer's first append").

Pure: JSON text in and out, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ledger.rules import ModelState, VersionState

FORMAT = 3
"""3: every field of the rule state, including ``feedback`` and ``alerts`` (format 1
lacked them), ``trained_recorded_by`` (schema v4's ``recorded_by``), ``reopened_by``
and ``stale_approval_by`` (format 2 lacked those). A snapshot of another format is not
used: the stream is folded in full once."""

EVERY = 100
"""A new snapshot is written with an append once the stream has grown by this many
events since the last one: a fresh writer folds at most about this many."""


@dataclass(frozen=True)
class Snapshot:
    sequence: int
    hash: str
    state: bytes


def dumps(state: ModelState) -> bytes:
    document = {
        "format": FORMAT,
        "model": state.model,
        "sequence": state.sequence,
        "last_hash": state.last_hash,
        "snapshots": sorted(state.snapshots),
        "versions": [
            {
                "version": v.version,
                "trained_by": v.trained_by,
                "trained_recorded_by": v.trained_recorded_by,
                "snapshot_ids": list(v.snapshot_ids),
                "evaluations": v.evaluations,
                "last_evaluation_passed": v.last_evaluation_passed,
                "approved_by": v.approved_by,
                "rejected_by": v.rejected_by,
                "retired": v.retired,
                "reopened_by": v.reopened_by,
                "stale_approval_by": v.stale_approval_by,
            }
            for _, v in sorted(state.versions.items())
        ],
        "deployed": dict(sorted(state.deployed.items())),
        "retired": state.retired,
        "last_recorded_at": state.last_recorded_at.isoformat() if state.last_recorded_at else None,
        "feedback": {event_id: [version, env] for event_id, (version, env) in sorted(state.feedback.items())},
        "alerts": sorted(state.alerts),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def loads(data: bytes) -> ModelState | None:
    """The state in ``data``, or None if it is not a snapshot this code wrote."""
    try:
        document = json.loads(data)
        if document.get("format") != FORMAT:
            return None
        versions = {
            int(v["version"]): VersionState(
                version=int(v["version"]),
                trained_by=v["trained_by"],
                trained_recorded_by=v["trained_recorded_by"],
                snapshot_ids=tuple(v["snapshot_ids"]),
                evaluations=int(v["evaluations"]),
                last_evaluation_passed=bool(v["last_evaluation_passed"]),
                approved_by=v["approved_by"],
                rejected_by=v["rejected_by"],
                retired=bool(v["retired"]),
                reopened_by=v["reopened_by"],
                stale_approval_by=v["stale_approval_by"],
            )
            for v in document["versions"]
        }
        at = document["last_recorded_at"]
        return ModelState(
            model=document["model"],
            sequence=int(document["sequence"]),
            last_hash=document["last_hash"],
            snapshots=frozenset(document["snapshots"]),
            versions=versions,
            deployed={str(env): int(v) for env, v in document["deployed"].items()},
            retired=bool(document["retired"]),
            last_recorded_at=datetime.fromisoformat(at) if at else None,
            feedback={str(k): (int(v[0]), str(v[1])) for k, v in document["feedback"].items()},
            alerts=frozenset(document["alerts"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
