"""Crash safety: a projector process is killed with SIGKILL at random moments, many
times, over a ledger of a few thousand events (and, fewer times, over a Kafka topic
of three partitions). After every kill the views must be exactly the fold of the
log up to the positions they store — no duplicate, no missing row — and after the
last restart, exactly a clean rebuild."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ledger.backends.sqlite import SqliteLog
from ledger.config import open_log
from projections import db
from projections.asof import AsOf
from projections.runner import Runner, build, project
from projections.synthetic import populate

KILLS = 20
KAFKA_KILLS = 8


def _projector(log_url: str, db_url: str, batch_size: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from ledger.cli import run; run()", "--log", log_url, "--db", db_url,
         "project", "--batch-size", str(batch_size), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored_position(engine) -> dict[int, int]:
    positions = Runner(engine).positions()
    # One transaction moves every projection: they always agree.
    assert len({tuple(sorted(p.items())) for p in positions.values()}) == 1, positions
    return next(iter(positions.values()))


def _uncut(dump: str) -> str:
    """A dump without the mark of a cut: the reference is marked, the target is not."""
    return "\n".join(line for line in dump.splitlines() if not line.startswith('["as_of", '))


def _crash_repeatedly(log, db_url: str, open_engine, *, kills_wanted: int, top_up, rng: random.Random) -> int:
    """Run the projector again and again, killing it at a random moment of its
    batches, until ``kills_wanted`` kills; check the views after every one."""
    target = open_engine(db_url)
    reference = open_engine("sqlite://")  # the log folded up to each stored position
    kills = finished = 0
    while kills < kills_wanted or not finished:
        process = _projector(log.url, db_url, batch_size=rng.randint(5, 60))
        if kills < kills_wanted:
            # Wait for a first committed batch (the interpreter's start is not
            # worth killing), then kill at a random moment of the batches after it.
            first = process.stderr.readline()
            if first.startswith("batch:"):
                time.sleep(rng.uniform(0.0, 0.12))
                process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=120)
        if process.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert process.returncode == 0, err
            finished += 1
            if kills < kills_wanted:
                top_up(finished)  # the projector caught up before enough kills: the ledger grows
        position = _stored_position(target)
        # A cut stays put once built: the reference is rebuilt at each position.
        project(log, reference, as_of=AsOf.at_positions(position))
        assert _uncut(db.dump(target)) == _uncut(db.dump(reference)), f"after {kills} kill(s), at {position}"

    last: dict[int, int] = {}
    for record in log.read():
        last[record.position.partition] = record.position.offset
    assert _stored_position(target) == last
    clean = build(log)
    try:
        assert db.dump(target) == db.dump(clean)
    finally:
        clean.dispose()
    return kills


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_neither_duplicates_nor_gaps(tmp_path, db_url, open_engine):
    log = SqliteLog(tmp_path / "log.db")
    populate(log, models=20, rounds=12, seed=1, prefix="a")
    with sqlite3.connect(log.path) as conn:  # an unreadable record in the middle
        conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('ghost', 1, 'junk', 'Junk', x'00', x'c301ffffffffffffffff00', 'x', 0)"
        )
    populate(log, models=15, rounds=12, seed=2, prefix="b")
    assert sum(1 for _ in log.read()) >= 2500

    def top_up(n: int) -> None:
        populate(log, models=3, rounds=3, seed=100 + n, prefix=f"late{n}")

    kills = _crash_repeatedly(log, db_url, open_engine, kills_wanted=KILLS, top_up=top_up, rng=random.Random(20260303))
    assert kills == KILLS
    log.close()


@pytest.mark.slow
@pytest.mark.kafka
def test_sigkill_on_kafka_positions_per_partition(kafka_log_url, kafka_bootstrap, kafka_topic, db_url, open_engine):
    from kafka import KafkaProducer

    log = open_log(kafka_log_url)
    populate(log, models=9, rounds=6, seed=3, prefix="k")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(kafka_topic, key=None, value=b"not an event")  # quarantined on the way
    producer.flush(timeout=30)
    producer.close(timeout=10)
    populate(log, models=9, rounds=4, seed=4, prefix="m")
    assert len({r.position.partition for r in log.read()}) == 3

    def top_up(n: int) -> None:
        populate(log, models=3, rounds=2, seed=200 + n, prefix=f"late{n}")

    kills = _crash_repeatedly(log, db_url, open_engine, kills_wanted=KAFKA_KILLS, top_up=top_up, rng=random.Random(4))
    assert kills == KAFKA_KILLS
    log.close()


def _project_killed_at(log_url: str, db_url: str, point: str, batch_size: int) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", "from ledger.cli import run; run()", "--log", log_url, "--db", db_url,
         "project", "--batch-size", str(batch_size)],
        env={**os.environ, "LEDGER_FAULT_POINT": point},
        capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("batch", [1, 3])
def test_sigkill_before_a_batch_commits_leaves_the_views_at_the_batch_before(tmp_path, db_url, open_engine, batch):
    # The fault point project-before-commit kills the projector (SIGKILL) with the
    # batch applied inside its open transaction: batch 1 means before anything was
    # ever committed. Nothing of the killed batch may remain, and a restart must
    # give exactly a clean rebuild.
    log = SqliteLog(tmp_path / "log.db")
    populate(log, models=6, rounds=3, seed=7, prefix="c")
    records = list(log.read())
    size = 25
    assert len(records) > 3 * size

    killed = _project_killed_at(log.url, db_url, f"project-before-commit@{batch}", size)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    target = open_engine(db_url)
    committed = records[(batch - 1) * size - 1].position.offset if batch > 1 else None
    if committed is None:
        assert Runner(target).position() == {}
        empty = open_engine("sqlite://")
        Runner(empty).positions()  # the tables, and nothing in them
        assert db.dump(target) == db.dump(empty)
    else:
        assert _stored_position(target) == {0: committed}
        reference = open_engine("sqlite://")
        project(log, reference, as_of=AsOf.at_positions({0: committed}))
        assert _uncut(db.dump(target)) == _uncut(db.dump(reference))

    restarted = _project_killed_at(log.url, db_url, "", size)
    assert restarted.returncode == 0, restarted.stderr
    clean = build(log)
    try:
        assert db.dump(target) == db.dump(clean)
    finally:
        clean.dispose()
    log.close()
