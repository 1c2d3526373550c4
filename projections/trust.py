"""Whether the views of a model can be trusted: its stream in the raw log verifies.

The views are folds of what the projector read, when it read it. Bytes altered in
the log afterwards (or a record removed, inserted, reordered) do not change a view:
only re-reading the log shows it. So the query commands, when they catch the views
up with the log, also walk every stream with ``ledger verify``'s own checks, and
mark each model: ``ok``, or ``FAILED`` with the first problem. Without a refresh
(``--no-refresh``, a frozen cut) the log is not read: the mark is ``unchecked``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ledger.identity import visible
from ledger.log import EventLog
from ledger.verify import verify
from projections import tables

HEADS_OF = "audit"
"""The projection whose stream heads stand for the views' (every projection applies
the same records; the audit trail applies every one of them)."""

OK, UNCHECKED = "ok", "unchecked"


def applied_heads(engine: Engine) -> dict[str, tuple[int, str]]:
    """model → ``(sequence, hash)`` of the last event the views applied from its stream."""
    s = tables.streams.c
    with engine.connect() as conn:
        rows = conn.execute(select(s.model, s.sequence, s.hash).where(s.projection == HEADS_OF))
        return {model: (sequence, hash_) for model, sequence, hash_ in rows}


def stream_problems(log: EventLog, views: Engine | None = None) -> dict[str, str]:
    """model → why its views cannot be trusted (its stream's first problem), for
    every model whose stream fails.

    With ``views``, each stream must also still hold the last event the views
    applied from it: a log whose last events were deleted (and perhaps replaced by
    others, chained anew) verifies on its own, but not against what was read from it."""
    heads = applied_heads(views) if views is not None else None
    report = verify(log.read(), home=getattr(log, "partition_for", None), heads=heads)
    problems = {}
    for p in report.problems:
        if p.model is None or p.model in problems:
            continue
        text = visible(str(p))
        if heads and p.model in heads and p.kind in ("missing", "altered") and p.sequence == heads[p.model][0]:
            problems[p.model] = (
                f"the log no longer holds event #{p.sequence} that these views applied ({text}): the log was "
                "rewritten after the views were built; rebuild them (ledger project --rebuild) and check the "
                "log against a saved checkpoint (ledger verify --checkpoint)"
            )
        else:
            problems[p.model] = f"its stream fails verification ({text}); run `ledger verify`"
    return problems


def verdict(model: str | None, problems: dict[str, str] | None) -> str:
    if problems is None:
        return UNCHECKED
    if model in problems:
        return "FAILED"
    return OK


def mark(rows: Iterable[dict], problems: dict[str, str] | None, key: str = "model") -> list[dict]:
    """``rows`` with a ``verified`` field: ok, FAILED or unchecked."""
    return [{**row, "verified": verdict(row.get(key), problems)} for row in rows]


def warnings(problems: dict[str, str] | None, models: Iterable[str | None]) -> list[str]:
    """One line per model among ``models`` whose stream fails verification."""
    if not problems:
        return []
    seen = sorted({m for m in models if m in problems})
    return [f"warning: the views of {visible(m)!r} cannot be trusted: {problems[m]}" for m in seen]
