"""The runner every consumer shares, with a small consumer of its own, on SQLite
and a real PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from consumers import store as consumer_store
from consumers.runner import Consumer, Intent, RetryPolicy, Runner
from ledger.client import Ledger
from ledger.config import open_log
from ledger import samples


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'views.db'}"
    return request.getfixturevalue("fresh_postgres")


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    consumer_store.dispose_engines()


@pytest.fixture
def log_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with Ledger.open(url) as ledger:
        for i in range(12):
            ledger.emit(samples.snapshot(f"m{i:02d}", actor="ops"))
    return url


class Recorder(Consumer):
    """Two effects per event; ``fail`` maps channel → failures before success."""

    name = "recorder"
    retry = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)

    def __init__(self, fail: dict[str, int] | None = None, broken_model: str | None = None):
        self.done: list[tuple[str, str]] = []
        self.tries: Counter = Counter()
        self.fail = fail or {}
        self.broken_model = broken_model
        self.lock = threading.Lock()

    def policy(self, event):
        if event.model == self.broken_model:
            raise KeyError("a bug in the policy")
        return [Intent("a", {"model": event.model}), Intent("b", {"model": event.model})]

    def perform(self, effect):
        with self.lock:
            self.tries[effect.id] += 1
            if self.tries[effect.id] <= self.fail.get(effect.channel, 0):
                raise RuntimeError(f"flaky {effect.channel}")
            self.done.append((effect.payload["model"], effect.channel))
        return "ok"


def run(consumer, log_url, db_url, **kwargs):
    with open_log(log_url) as event_log:
        return Runner(consumer, event_log, db_url, **kwargs).run_once(max_wait=5)


def test_small_batches_record_every_effect_once_and_advance_the_position(log_url, db_url):
    consumer = Recorder()
    report = run(consumer, log_url, db_url, batch_size=5)
    assert report.records == 12 and report.new_effects == 24 and report.delivered == 24
    assert sorted(consumer.done) == sorted((f"m{i:02d}", c) for i in range(12) for c in "ab")
    store = consumer_store.Store(consumer_store.engine_for(db_url), "recorder")
    assert store.positions() == {0: 12}
    assert run(Recorder(), log_url, db_url).records == 0


def test_a_policy_that_raises_dead_letters_the_event_and_the_consumer_goes_on(log_url, db_url):
    consumer = Recorder(broken_model="m03")
    report = run(consumer, log_url, db_url)
    assert report.dead_records == 1 and report.delivered == 22
    (letter,) = consumer_store.Store(consumer_store.engine_for(db_url), "recorder").list_dead_letters()
    assert letter["offset"] == 4 and "policy failed" in letter["reason"] and "a bug in the policy" in letter["reason"]
    assert letter["event_id"]


def test_an_unexpected_exception_is_retried_and_then_dead(log_url, db_url):
    consumer = Recorder(fail={"a": 1, "b": 99})
    report = run(consumer, log_url, db_url)
    assert report.delivered == 12 and report.dead_effects == 12
    store = consumer_store.Store(consumer_store.engine_for(db_url), "recorder")
    assert {r["attempts"] for r in store.list_effects("delivered")} == {2}
    dead = store.list_effects("dead")
    assert {r["channel"] for r in dead} == {"b"}
    assert all(r["last_error"] == "gave up after 3 attempt(s): RuntimeError: flaky b" for r in dead)


def test_two_runners_of_one_consumer_perform_each_effect_once(log_url, db_url):
    consumer = Recorder()
    start = threading.Barrier(2)
    errors = []

    def work():
        start.wait()
        try:
            run(consumer, log_url, db_url, batch_size=3)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Counter(consumer.done) == Counter({(f"m{i:02d}", c): 1 for i in range(12) for c in "ab"})


def test_a_stopped_runner_records_what_it_did_and_the_next_run_finishes(log_url, db_url):
    stop = threading.Event()

    class StopsAfterThree(Recorder):
        def perform(self, effect):
            outcome = super().perform(effect)
            if len(self.done) == 3:
                stop.set()
            return outcome

    first = StopsAfterThree()
    with open_log(log_url) as event_log:
        Runner(first, event_log, db_url, stop=stop).run_once(max_wait=5)
    second = Recorder()
    run(second, log_url, db_url)
    assert len(first.done) == 3
    assert sorted(first.done + second.done) == sorted((f"m{i:02d}", c) for i in range(12) for c in "ab")


def test_positions_of_one_log_are_not_applied_to_another(log_url, db_url, tmp_path, monkeypatch):
    """The same database pointed at another log is refused before anything is read;
    the log it follows, reached through another spelling of its URL, is not."""
    from ledger.errors import WrongLog

    run(Recorder(), log_url, db_url)
    store = consumer_store.Store(consumer_store.engine_for(db_url), "recorder")
    before = (store.positions(), store.count_by_status())

    other = f"sqlite:///{tmp_path / 'other.db'}"
    with Ledger.open(other) as ledger:
        for i in range(15):
            ledger.emit(samples.snapshot(f"x{i:02d}", actor="ops"))
    consumer = Recorder()
    with pytest.raises(WrongLog, match="follow another log .*fresh database") as refused:
        run(consumer, other, db_url)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
    assert consumer.done == []
    assert (store.positions(), store.count_by_status()) == before

    monkeypatch.chdir(tmp_path)
    with Ledger.open("sqlite:///log.db") as ledger:  # the first log, by a relative path
        ledger.emit(samples.snapshot("late", actor="ops"))
    consumer = Recorder()
    assert run(consumer, "sqlite:///log.db", db_url).records == 1
    assert sorted(consumer.done) == [("late", "a"), ("late", "b")]


def test_an_empty_log_binds_nothing(tmp_path, db_url):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with open_log(empty):
        pass
    assert run(Recorder(), empty, db_url).records == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with Ledger.open(other) as ledger:
        ledger.emit(samples.snapshot("m", actor="ops"))
    assert run(Recorder(), other, db_url).records == 1
