"""The partition writer's rounds, driven directly (no HTTP) on the embedded log:
requests queued together are decided in order in one round, and a request the
backend refuses for a reason of its own fails alone."""

from __future__ import annotations

import sqlite3
import time

import pytest

from ledger import samples
from ledger.append import Appender
from ledger.backends.sqlite import SqliteLog
from ledger.errors import RuleViolation
from ledger.service.writer import PartitionWriter, Request, RoundObserver


class Rounds(RoundObserver):
    def __init__(self):
        self.sizes = []

    def round_committed(self, partition, requests, events, seconds):
        self.sizes.append(requests)


def request(*events) -> Request:
    return Request(events[0].model, list(events), None, time.monotonic() + 30)


@pytest.fixture
def log(tmp_path):
    with SqliteLog(tmp_path / "log.db") as opened:
        yield opened


def run_one_round(log, requests) -> Rounds:
    rounds = Rounds()
    writer = PartitionWriter(log, Appender(log), 0, observer=rounds)
    for r in requests:
        writer.submit(r)  # queued before the thread starts: one round takes them all
    writer.start()
    for r in requests:
        r.future.exception(timeout=30)
    writer.stop()
    return rounds


def test_requests_of_one_round_are_decided_in_order_against_each_other(log):
    first = request(samples.snapshot("churn", "s1"))
    train = request(samples.trained("churn", snapshots=("s1",)))  # needs the snapshot just before it
    again = request(samples.trained("churn", snapshots=("s1",)))  # version 1 again: refused alone
    other = request(samples.snapshot("fraud", "s1"))
    rounds = run_one_round(log, [first, train, again, other])
    assert rounds.sizes == [4]
    assert first.future.result()[0].event.sequence == 1
    assert train.future.result()[0].event.sequence == 2
    assert isinstance(again.future.exception(), RuleViolation) and again.future.exception().rule == "version-never-reused"
    assert other.future.result()[0].event.sequence == 1
    assert [(r.model, r.sequence) for r in log.read()] == [("churn", 1), ("churn", 2), ("fraud", 1)]


def test_an_event_id_clash_the_backend_finds_fails_only_its_request(log):
    taken = samples.snapshot("churn", "s1")
    run_one_round(log, [request(taken)])
    clash = request(samples.snapshot("fraud", "s1").model_copy(update={"event_id": taken.event_id}))
    fine = request(samples.snapshot("pricing", "s1"))
    run_one_round(log, [clash, fine])
    assert isinstance(clash.future.exception(), RuleViolation)
    assert clash.future.exception().rule == "event-id-unique"
    assert fine.future.result()[0].event.sequence == 1
    assert [r.model for r in log.read()] == ["churn", "pricing"]


def test_a_request_past_its_deadline_is_not_written(log):
    late = Request("churn", [samples.snapshot("churn", "s1")], None, time.monotonic() - 1)
    run_one_round(log, [late])
    assert "deadline" in str(late.future.exception())
    assert list(log.read()) == []


def test_a_round_keeps_the_rule_state_snapshot_a_fresh_writer_starts_from(log, tmp_path, monkeypatch):
    from ledger import append as append_module
    from ledger import rule_snapshots
    from ledger.client import Ledger
    from ledger.events import DriftDetected

    def drift(i):
        return DriftDetected(model="churn", version=1, actor="monitor", environment="production", metric="psi",
                             value=0.1 + i / 10_000, threshold=0.2, reference_snapshot_id="s1")

    setup = request(samples.snapshot("churn", "s1"), samples.trained("churn"), samples.evaluated("churn"),
                    samples.approved("churn"), samples.deployed("churn"))
    checks = [request(*[drift(i) for i in range(start, start + 50)]) for start in range(0, 150, 50)]
    run_one_round(log, [setup, *checks])
    head = [(r.sequence, r.hash) for r in log.read(model="churn")][-1]
    assert head[0] == 155 > rule_snapshots.EVERY
    with sqlite3.connect(tmp_path / "log.db") as conn:
        kept = conn.execute("SELECT sequence, hash FROM rule_snapshots WHERE model = 'churn'").fetchone()
    assert kept == head  # the stream's state after the round, bound to its real head

    folded: list[int] = []
    real = append_module.fold
    monkeypatch.setattr(append_module, "fold", lambda m, records, state=None: folded.append(len(records := list(records))) or real(m, records, state))
    with Ledger.open(f"sqlite:///{tmp_path / 'log.db'}") as fresh:  # a new process's writer
        with pytest.raises(RuleViolation) as refused:
            fresh.emit(samples.trained("churn", snapshots=("s1",)))
        assert refused.value.rule == "version-never-reused"
        assert fresh.emit(drift(999)).event.sequence == 156
    assert folded and max(folded) == 0  # started from the round's snapshot, not from event 1
