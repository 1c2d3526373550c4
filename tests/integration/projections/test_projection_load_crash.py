"""Crash safety of the fast path a rebuild takes (a bulk load: bulk statements,
commits that do not wait for the disk, state kept in memory across batches).

``ledger project --rebuild`` and the resuming ``ledger project`` are SIGKILLed at
random moments, many times, on each database. After every kill the views must be
exactly the fold of the log up to the positions they store; after the last run,
exactly a clean rebuild, with the load's mark cleared. A damaged file under an
interrupted load is refused with one line, not resumed.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy import inspect

from ledger import faults
from ledger.backends.sqlite import SqliteLog
from projections import db, tables
from projections.asof import AsOf
from projections.runner import LOADING, Runner, build, project
from projections.synthetic import populate

KILLS = 23
"""Per database; with the other crash tests, more than 100 kills per suite run."""


def _projector(log_url: str, db_url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "--log", log_url, "--db", db_url, "project", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored_position(engine) -> dict[int, int]:
    positions = Runner(engine).positions()
    assert len({tuple(sorted(p.items())) for p in positions.values()}) == 1, positions
    return next(iter(positions.values()))


def _comparable(dump: str, position: dict[int, int]) -> str:
    """A dump without the marks that differ by design: the reference is a cut; the
    target may hold the mark of its interrupted load; and before its first batch it
    has not recorded which log it follows."""
    marks = ('["as_of", ', f'["{LOADING}", ') + (() if position else ('["log", ',))
    return "\n".join(line for line in dump.splitlines() if not line.startswith(marks))


def _loading(engine) -> bool:
    with engine.connect() as conn:
        return db.get_meta(conn, LOADING) is not None


@pytest.fixture
def ledger_log(tmp_path):
    log = SqliteLog(tmp_path / "log.db")
    populate(log, models=12, rounds=12, seed=5, prefix="a")
    with sqlite3.connect(log.path) as conn:  # an unreadable record on the way
        conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('ghost', 1, 'junk', 'Junk', x'00', x'c301ffffffffffffffff00', 'x', 0)"
        )
    populate(log, models=10, rounds=10, seed=6, prefix="b")
    yield log
    log.close()


@pytest.mark.slow
def test_sigkill_during_rebuilds_and_resumed_loads(ledger_log, db_url, open_engine):
    log = ledger_log
    rng = random.Random(20261129)
    target = open_engine(db_url)
    reference = open_engine("sqlite://")
    kills = 0
    while kills < KILLS:
        # A rebuild starts over; a plain run resumes an interrupted load. Small
        # batches so that kills land between commits as well as inside them.
        args = ["--rebuild"] if rng.random() < 0.4 else []
        process = _projector(log.url, db_url, *args, "--batch-size", str(rng.randint(20, 200)))
        time.sleep(rng.uniform(0.4, 2.5))
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=120)
        if process.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert process.returncode == 0, err
        position = _stored_position(target)
        project(log, reference, as_of=AsOf.at_positions(position))
        assert _comparable(db.dump(target), position) == _comparable(db.dump(reference), position), (
            f"after {kills} kill(s), at {position}"
        )

    finish = _projector(log.url, db_url)
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert not _loading(target)
    clean = build(log)
    try:
        assert db.dump(target) == db.dump(clean)
    finally:
        clean.dispose()


def test_an_interrupted_load_on_a_damaged_file_is_refused_in_one_line(ledger_log, tmp_path):
    url = f"sqlite:///{tmp_path / 'views.db'}"
    engine = db.open_db(url)
    project(ledger_log, engine, rebuild=True, batch_size=50)
    engine.dispose()
    # As an OS crash in the middle of a load leaves it: the mark still there, a page torn.
    with sqlite3.connect(tmp_path / "views.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("INSERT INTO proj_meta (key, value) VALUES (?, '1')", (LOADING,))
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'audit_events'").fetchone()[0]
    with open(tmp_path / "views.db", "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * 64)

    process = _projector(ledger_log.url, url)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "damaged" in lines[0] and "new database file" in lines[0], err

    process = _projector(ledger_log.url, url)  # refused again, not half-resumed
    assert process.wait(timeout=120) == 3

    fresh = f"sqlite:///{tmp_path / 'new.db'}"
    process = _projector(ledger_log.url, fresh, "--rebuild")  # the way out it names
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    clean = build(ledger_log)
    views = db.open_db(fresh)
    try:
        assert db.dump(views) == db.dump(clean)
    finally:
        clean.dispose()
        views.dispose()


def _indexes(engine) -> set[str]:
    found = set()
    inspector = inspect(engine)
    for table in tables.ALL:
        found.update(ix["name"] for ix in inspector.get_indexes(table.name))
    return found


def test_a_killed_load_builds_the_query_indexes_when_it_is_resumed(ledger_log, db_url, open_engine):
    """A load builds the indexes only queries need once, at its end: a load killed
    before that leaves them to the run that resumes it, which builds them all."""
    declared = {ix.name for table in tables.ALL for ix in table.indexes}
    target = open_engine(db_url)
    killed = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--log", ledger_log.url, "--db", db_url, "project", "--rebuild", "--batch-size", "50"],
        env={**os.environ, faults.ENV: "project-before-commit@3"},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _loading(target)
    assert _stored_position(target)  # two batches committed
    assert not declared <= _indexes(target)  # left to the end of the load

    finish = _projector(ledger_log.url, db_url)
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert not _loading(target)
    assert declared <= _indexes(target)
    clean = build(ledger_log)
    try:
        assert db.dump(target) == db.dump(clean)
    finally:
        clean.dispose()
