"""The embedded log's append does work bounded by the append, not by the stream's
history: a writer appending to a model with years of events pays what it pays on a
young one. Measured in SQLite virtual-machine steps (a progress handler), which do
not depend on the machine's load."""

from __future__ import annotations

from ledger import samples
from ledger.client import Ledger


def _steps(ledger: Ledger, drafts: list) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    conn = ledger.log._conn
    conn.set_progress_handler(count, 100)
    try:
        ledger.emit_many(drafts)
    finally:
        conn.set_progress_handler(None, 100)
    return steps


def _grow(ledger: Ledger, model: str, events: int) -> None:
    for start in range(0, events, 500):
        ledger.emit_many([samples.snapshot(model, f"old-{i}") for i in range(start, min(start + 500, events))])


def test_a_batched_append_costs_the_same_on_a_long_stream(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'log.db'}") as ledger:
        _grow(ledger, "young", 100)
        _grow(ledger, "old", 4000)
        young = _steps(ledger, [samples.snapshot("young", f"new-{i}") for i in range(100)])
        old = _steps(ledger, [samples.snapshot("old", f"new-{i}") for i in range(100)])
    # Looking the batch's event ids up (idempotent retries) once went through the
    # (model, sequence) index and read every event of the model.
    assert old < 1.5 * young, (young, old)


def test_a_single_append_costs_the_same_on_a_long_stream(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'log.db'}") as ledger:
        _grow(ledger, "young", 100)
        _grow(ledger, "old", 4000)
        young = _steps(ledger, [samples.snapshot("young", "new")])
        old = _steps(ledger, [samples.snapshot("old", "new")])
    assert old < 1.5 * young, (young, old)
