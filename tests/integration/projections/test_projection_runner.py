"""The runner on the embedded log: resumes exactly where it stopped, rebuilding
gives the very same rows as running incrementally, follows the log, and the
``ledger project`` command around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from projection_scenario import play
from sqlalchemy import text

from ledger.backends.sqlite import SqliteLog
from ledger.cli import main
from ledger.errors import BackendError
from projections import db, queries
from projections.audit import Audit
from projections.runner import Runner, build, default_projections, project
from projections.synthetic import populate


@pytest.fixture
def log(tmp_path):
    log = SqliteLog(tmp_path / "log.db")
    yield log
    log.close()


def _last_offset(log) -> int:
    return max(r.position.offset for r in log.read())


def test_resumes_exactly_where_it_stopped(log, engine):
    populate(log, models=4, rounds=3, seed=1, prefix="m1")
    first = Runner(engine, batch_size=10).run(log)
    assert first.records == len(list(log.read()))
    assert first.batches == -(-first.records // 10)
    assert Runner(engine).run(log).records == 0
    before = _last_offset(log)
    populate(log, models=2, rounds=1, seed=2, prefix="m2")
    new = [r for r in log.read(after={0: before})]
    again = Runner(engine).run(log)
    assert again.records == len(new)
    assert again.positions == {0: new[-1].position.offset}
    assert {name: p for name, p in Runner(engine).positions().items()} == {
        name: {0: new[-1].position.offset} for name in ("registry", "lineage", "audit", "quarantine", "field")
    }
    assert len(queries.audit(engine)) == len(list(log.read()))


def test_incremental_runs_and_a_rebuild_give_identical_rows(log, engine, new_db_url, open_engine):
    # The log grows between runs of different batch sizes.
    for seed, batch_size in ((1, 7), (2, 50), (3, 1), (4, 500)):
        populate(log, models=5, rounds=2, seed=seed, prefix=f"m{seed}")
        Runner(engine, batch_size=batch_size).run(log)
    incremental = db.dump(engine)
    rebuilt = open_engine(new_db_url())
    project(log, rebuilt, rebuild=True, batch_size=123)
    assert db.dump(rebuilt) == incremental
    # Dropping every view in place and replaying gives them back too.
    project(log, engine, rebuild=True)
    assert db.dump(engine) == incremental
    assert incremental.count("\n") > 1000


def test_a_rebuild_without_the_read_ahead_thread_gives_the_same_rows(log, engine, new_db_url, open_engine):
    populate(log, models=6, rounds=3, seed=11)
    project(log, engine, rebuild=True, batch_size=40)
    inline = open_engine(new_db_url())
    report = project(log, inline, rebuild=True, batch_size=40, read_ahead=False)
    assert report.records == len(list(log.read()))
    assert db.dump(inline) == db.dump(engine)


def test_a_projection_added_later_catches_up_on_its_own(log, engine, new_db_url, open_engine):
    play(log)
    Runner(engine, [Audit()]).run(log)
    assert queries.status(engine)["positions"].keys() == {"audit"}
    Runner(engine).run(log)  # registry, lineage and quarantine start from the beginning
    full = open_engine(new_db_url())
    project(log, full)
    assert db.dump(engine) == db.dump(full)


def test_two_runners_on_one_database_apply_each_event_once(log, engine, new_db_url, open_engine):
    populate(log, models=6, rounds=4, seed=5, prefix="m5")
    errors = []

    def run():
        try:
            Runner(engine, batch_size=13).run(log)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reference = open_engine(new_db_url())
    project(log, reference)
    assert db.dump(engine) == db.dump(reference)


def test_follow_applies_new_events_until_terminated(log, db_url, new_db_url, open_engine):
    play(log)
    env = {**os.environ, "LEDGER_LOG": log.url, "LEDGER_DB": db_url}
    follower = subprocess.Popen(
        [sys.executable, "-c", "from ledger.cli import run; run()", "project", "--follow", "--poll-interval", "0.1", "-v"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        engine = open_engine(db_url)
        _wait(lambda: _at(engine, log), follower)
        populate(log, models=2, rounds=2, seed=9, prefix="m9")
        _wait(lambda: _at(engine, log), follower)
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert "batch:" in err
    assert out.startswith("applied ")
    reference = open_engine(new_db_url())
    project(log, reference)
    assert db.dump(engine) == db.dump(reference)


def _at(engine, log) -> bool:
    try:
        positions = queries.status(engine)["positions"]
    except Exception:
        return False
    last = _last_offset(log)
    return len(positions) == len(default_projections()) and all(p.get("0") == last for p in positions.values())


def _wait(condition, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the follower did not catch up"
        time.sleep(0.05)


def test_cli_project_prints_what_it_applied_and_resumes(log, db_url):
    play(log)
    runner = CliRunner()
    first = runner.invoke(main, ["--log", log.url, "--db", db_url, "project", "--batch-size", "5"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"applied {len(list(log.read()))} record(s) in 5 batch(es)")
    assert f"at 0:{_last_offset(log)}" in first.output
    second = runner.invoke(main, ["--log", log.url, "--db", db_url, "project"])
    assert second.output.startswith("applied 0 record(s)")
    assert f"at 0:{_last_offset(log)}" in second.output
    rebuilt = runner.invoke(main, ["--log", log.url, "--db", db_url, "project", "--rebuild"])
    assert rebuilt.output.startswith(f"applied {len(list(log.read()))} record(s)")


def test_cli_project_errors_have_documented_exit_codes(log, tmp_path):
    play(log)
    runner = CliRunner()
    bad_url = runner.invoke(main, ["--log", log.url, "--db", "nosuchdb://x", "project"])
    assert bad_url.exit_code == 2 and "not supported" in bad_url.output
    unreachable = runner.invoke(main, ["--log", log.url, "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "project"])
    assert unreachable.exit_code == 3 and "error:" in unreachable.output
    bad_batch = runner.invoke(main, ["--log", log.url, "--db", f"sqlite:///{tmp_path / 'v.db'}", "project", "--batch-size", "0"])
    assert bad_batch.exit_code == 2


def test_cli_project_help_has_an_example():
    result = CliRunner().invoke(main, ["project", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "ledger project" in result.output


def test_build_answers_without_a_projection_database(log):
    play(log)
    engine = build(log)
    try:
        assert [m["model"] for m in queries.list_models(engine)] == ["churn", "fraud"]
        assert engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "")
    finally:
        engine.dispose()


class _Flaky:
    """A log whose first reads fail as an unreachable broker would."""

    def __init__(self, log, failures: int):
        self.log = log
        self.failures = failures

    def end_offsets(self):
        return self.log.end_offsets()

    def read(self, after=None, **kwargs):
        if self.failures:
            self.failures -= 1
            raise BackendError("the broker is unreachable")
        return self.log.read(after=after, **kwargs)


def test_follow_outlives_an_unreachable_log(log, engine):
    play(log)
    errors = []
    runner = Runner(engine)
    report = runner.follow(
        _Flaky(log, failures=2),
        poll_interval=0.01,
        on_error=lambda exc, delay: errors.append((str(exc), delay)),
        should_stop=lambda: runner.position() == {0: _last_offset(log)},
    )
    assert [e for e, _ in errors] == ["the broker is unreachable"] * 2
    assert errors[1][1] > errors[0][1]  # backing off
    assert report.records == len(list(log.read()))


def test_rebuild_leaves_other_tables_of_the_database_alone(log, engine):
    play(log)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE cons_notes (id INTEGER PRIMARY KEY, note TEXT)"))
        conn.execute(text("INSERT INTO cons_notes (id, note) VALUES (1, 'kept')"))
    project(log, engine)
    project(log, engine, rebuild=True)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM cons_notes")).scalar() == "kept"
    assert len(queries.audit(engine)) == len(list(log.read()))
