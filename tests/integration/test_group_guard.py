"""The guard that makes a stalled member of a consumer group harmless: a batch is
written only if the stored position of its partition is still the one the batch
was read from, checked inside the write transaction. A process that paused while
its partitions were handed over (and another process applied them) has its late
batch refused — nothing applied twice, nothing written at all — on SQLite and a
real PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from consumers import store as consumer_store
from consumers.store import Store, effect_id, engine_for
from ledger import samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.follow import PositionMoved
from projections import db
from projections.runner import Runner, project
from test_runner import _fresh_engines, db_url  # noqa: F401 - the consumer tests' fixtures: SQLite and PostgreSQL views, engines disposed


@pytest.fixture
def log(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with Ledger.open(url) as ledger:
        for i in range(12):
            ledger.emit(samples.snapshot(f"m{i:02d}", actor="ops"))
    with open_log(url) as event_log:
        yield event_log


def test_a_stale_projector_batch_is_refused_and_nothing_is_applied_twice(log, db_url, tmp_path):
    records = list(log.read())
    assert len({r.position.partition for r in records}) == 1
    engine = db.open_db(db_url)
    live, stale = Runner(engine), Runner(engine)
    live_from: dict[int, int] = {}
    stale_from: dict[int, int] = {}  # both read the partition from its beginning
    live.apply_from(log, records[:8], live_from)
    assert live_from == {0: records[7].position.offset}
    before = db.dump(engine)

    # The stale process read records 0..4 from the beginning; the views are past them.
    with pytest.raises(PositionMoved, match="partition 0 .* is at offset .*, not -1"):
        stale.apply_from(log, records[:5], stale_from)
    assert db.dump(engine) == before
    assert stale_from == {}

    # A batch that starts where the views stand is applied, by either process.
    at = stale.position()
    assert at == live_from
    stale.apply_from(log, records[8:], dict(at))
    with pytest.raises(PositionMoved):
        live.apply_from(log, records[8:], live_from)  # live's own view is stale now

    reference = db.open_db(f"sqlite:///{tmp_path / 'reference.db'}")
    project(log, reference, rebuild=True)
    assert db.dump(engine) == db.dump(reference)
    engine.dispose()
    reference.dispose()


def _effect(event_id: str, offset: int, now: float) -> dict:
    return {
        "id": effect_id("recorder", event_id, "a"),
        "event_id": event_id,
        "channel": "a",
        "event_type": "DataSnapshotted",
        "model": "m00",
        "version": None,
        "partition": 0,
        "offset": offset,
        "payload": "{}",
        "status": consumer_store.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def test_a_stale_consumer_batch_is_refused_with_its_effects(db_url):
    store = Store(engine_for(db_url), "recorder")
    now = time.time()
    with store.begin() as conn:
        store.record_batch(conn, {0: 4}, [_effect("e1", 4, now)], [], now, expected={})
    # Read from the beginning by a process that did not see the batch above.
    with pytest.raises(PositionMoved, match="partition 0"):
        with store.begin() as conn:
            store.record_batch(conn, {0: 7}, [_effect("e2", 7, now)], [], now, expected={})
    # Read from an offset the position has already left.
    with pytest.raises(PositionMoved, match="partition 0 is at offset 4, not 2"):
        with store.begin() as conn:
            store.record_batch(conn, {0: 7}, [_effect("e2", 7, now)], [], now, expected={0: 2})
    assert store.positions() == {0: 4}
    assert [e["event_id"] for e in store.list_effects()] == ["e1"]

    with store.begin() as conn:
        store.record_batch(conn, {0: 7}, [_effect("e2", 7, now)], [], now, expected={0: 4})
    assert store.positions() == {0: 7}
    assert [e["event_id"] for e in store.list_effects()] == ["e1", "e2"]


def test_of_two_racing_batches_from_one_position_only_the_first_commits(db_url):
    """The zombie race itself: two transactions moving one partition from the same
    position at the same time. The second waits for the first (PostgreSQL's row
    lock, SQLite's write lock), then finds the position moved and rolls back."""
    store = Store(engine_for(db_url), "recorder")
    now = time.time()
    with store.begin() as conn:
        store.record_batch(conn, {0: 4}, [], [], now, expected={})
    outcome: list = []
    first_open = threading.Event()
    release = threading.Event()

    def first():
        with store.begin() as conn:
            store.record_batch(conn, {0: 9}, [_effect("first", 9, now)], [], now, expected={0: 4})
            first_open.set()
            release.wait(30)

    def second():
        try:
            with store.begin() as conn:
                store.record_batch(conn, {0: 9}, [_effect("second", 9, now)], [], now, expected={0: 4})
        except PositionMoved as exc:
            outcome.append(exc)
        else:
            outcome.append("committed")

    one = threading.Thread(target=first)
    one.start()
    assert first_open.wait(30)
    two = threading.Thread(target=second)
    two.start()
    time.sleep(0.5)
    assert outcome == []  # waiting for the first transaction
    release.set()
    one.join(30)
    two.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], PositionMoved), outcome
    assert store.positions() == {0: 9}
    assert [e["event_id"] for e in store.list_effects()] == ["first"]
