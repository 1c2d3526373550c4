"""The views follow one log. Their stored positions mean nothing in another log, so
pointing the same database at another log (another file, another topic) is refused
before anything is applied; the same log reached through another spelling of its
URL is accepted; ``--rebuild`` makes the views follow the new log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ledger.backends.sqlite import SqliteLog
from ledger.cli import main
from ledger.config import open_log
from ledger.errors import WrongLog
from projections import db, queries
from projections.runner import Runner, build, project
from projections.synthetic import populate


def _log(path, seed: int, prefix: str) -> SqliteLog:
    log = SqliteLog(path)
    populate(log, models=2, rounds=2, seed=seed, prefix=prefix)
    return log


def _cli(log_url: str, db_url: str, *args: str):
    return CliRunner().invoke(main, ["--log", log_url, "--db", db_url, *args])


def test_views_refuse_another_log_and_stay_unchanged(tmp_path, db_url, engine):
    first = _log(tmp_path / "first.db", seed=1, prefix="a")
    other = _log(tmp_path / "other.db", seed=2, prefix="b")
    populate(other, models=2, rounds=2, seed=3, prefix="c")  # longer: its offsets go past the views'
    project(first, engine)
    views = db.dump(engine)

    with pytest.raises(WrongLog, match="follow another log"):
        Runner(engine).run(other)
    for command in (["project"], ["models"], ["audit"]):
        result = _cli(other.url, db_url, *command)
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert "follow another log" in line and "fresh database" in line and "--rebuild" in line
    assert db.dump(engine) == views
    assert {m["model"] for m in queries.list_models(engine)} == {m for m in first.models()}
    first.close()
    other.close()


def test_the_same_log_through_another_spelling_is_accepted(tmp_path, db_url, engine, monkeypatch):
    log = _log(tmp_path / "log.db", seed=1, prefix="a")
    assert _cli(f"sqlite:///{tmp_path}/./log.db", db_url, "project").exit_code == 0
    populate(log, models=1, rounds=1, seed=9, prefix="late")
    monkeypatch.chdir(tmp_path)
    result = _cli("sqlite:///log.db", db_url, "project")
    assert result.exit_code == 0, result.output
    assert "late" in " ".join(m["model"] for m in queries.list_models(engine))
    whole = build(log)
    try:
        assert db.dump(engine) == db.dump(whole)
    finally:
        whole.dispose()
        log.close()


def test_rebuild_adopts_the_new_log(tmp_path, db_url, engine, new_db_url, open_engine):
    first = _log(tmp_path / "first.db", seed=1, prefix="a")
    other = _log(tmp_path / "other.db", seed=2, prefix="b")
    project(first, engine)
    assert _cli(other.url, db_url, "project").exit_code == 2
    result = _cli(other.url, db_url, "project", "--rebuild")
    assert result.exit_code == 0, result.output
    expected = build(other, new_db_url())
    try:
        assert db.dump(engine) == db.dump(expected)
    finally:
        expected.dispose()
    assert _cli(first.url, db_url, "models").exit_code == 2  # now the first log is the other one
    first.close()
    other.close()


def test_views_of_an_empty_log_follow_no_log_yet(tmp_path, engine):
    empty = SqliteLog(tmp_path / "empty.db")
    project(empty, engine)
    other = _log(tmp_path / "other.db", seed=2, prefix="b")
    assert project(other, engine).records == sum(1 for _ in other.read())
    empty.close()
    other.close()


@pytest.mark.kafka
def test_another_topic_is_refused_and_a_later_first_record_of_partition_0_changes_nothing(
    kafka_bootstrap, kafka_topic, tmp_path
):
    engine = db.open_db(f"sqlite:///{tmp_path / 'views.db'}")
    log = open_log(f"kafka://{kafka_bootstrap}/{kafka_topic}?partitions=3")
    other = open_log(f"kafka://{kafka_bootstrap}/{kafka_topic}-other?partitions=3")
    try:
        names = (f"m{i}" for i in range(1000))
        late = next(n for n in names if log.partition_for(f"{n}-0000") == 0)  # populate's model names
        early = next(n for n in names if log.partition_for(f"{n}-0000") != 0)
        populate(log, models=1, rounds=1, seed=1, prefix=early)  # partition 0 is still empty
        populate(other, models=1, rounds=1, seed=1, prefix=early)
        project(log, engine)
        populate(log, models=1, rounds=1, seed=2, prefix=late)
        assert project(log, engine).records > 0
        views = db.dump(engine)
        with pytest.raises(WrongLog, match=f"Kafka topic '{kafka_topic}'"):
            project(other, engine)
        assert db.dump(engine) == views
    finally:
        log.close()
        other.close()
        engine.dispose()
