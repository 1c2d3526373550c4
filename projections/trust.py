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

from ledger.identity import visible
from ledger.log import EventLog
from ledger.verify import verify

OK, UNCHECKED = "ok", "unchecked"


def stream_problems(log: EventLog) -> dict[str, str]:
    """model → its stream's first problem, for every model whose stream fails."""
    report = verify(log.read(), home=getattr(log, "partition_for", None))
    return {p.model: visible(str(p)) for p in report.problems if p.model is not None}


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
    return [
        f"warning: the views of {visible(m)!r} cannot be trusted: its stream fails verification ({problems[m]}); "
        "run `ledger verify`"
        for m in seen
    ]
