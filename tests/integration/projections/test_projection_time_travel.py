"""As of any instant or log position: the live views' validity intervals and a fold
of the log cut at that moment give the same answers, and the answers are those of
the scripted history (deploy v1, deploy v2, roll back to v1, retire)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from projection_scenario import EXPECTED, at, play, production

from ledger.backends.sqlite import SqliteLog
from ledger.cli import main
from ledger.errors import InputError, NotFound
from projections import db, queries
from projections.asof import AsOf
from projections.runner import Runner, build, project


@pytest.fixture
def scripted(tmp_path):
    log = SqliteLog(tmp_path / "log.db")
    script = play(log)
    yield script
    log.close()


def _answers(engine, as_of=None) -> dict:
    """Everything the query functions say, for comparing two databases."""
    models = queries.list_models(engine, as_of=as_of)
    answers = {
        "models": models,
        "deployments": queries.deployments(engine, as_of=as_of, history=True),
        "audit": queries.audit(engine, as_of=as_of),
    }
    for m in models:
        versions = queries.model_versions(engine, m["model"], as_of=as_of)
        answers[m["model"]] = versions
        for v in versions:
            answers[f"{m['model']}@{v['version']}"] = queries.version_detail(engine, m["model"], v["version"], as_of=as_of)
            answers[f"lineage {m['model']}@{v['version']}"] = {
                d: queries.lineage(engine, f"version:{m['model']}@{v['version']}", direction=d, as_of=as_of)["nodes"]
                for d in ("up", "down")
            }
    return answers


@pytest.mark.parametrize("instant, in_production, churn_statuses", EXPECTED, ids=[e[0].isoformat() for e in EXPECTED])
def test_as_of_an_instant_live_views_and_a_cut_fold_agree_with_the_history(
    scripted, engine, new_db_url, open_engine, instant, in_production, churn_statuses
):
    project(scripted.log, engine)
    cut = AsOf.at(instant)
    assert production(queries.deployments(engine, as_of=cut)) == in_production
    statuses = {v["version"]: v["status"] for v in queries.model_versions(engine, "churn", as_of=cut)}
    assert statuses == churn_statuses

    folded = build(scripted.log, new_db_url(), as_of=cut)
    try:
        assert production(queries.deployments(folded)) == in_production
        assert _answers(folded) == {**_answers(engine, cut)}
    finally:
        folded.dispose()


def test_what_was_in_production_on_3_march_who_approved_it_on_which_data(scripted, engine):
    project(scripted.log, engine)
    [churn] = queries.deployments(engine, model="churn", environment="production", as_of=AsOf.at("2026-03-03"))
    assert (churn["version"], churn["approved_by"], churn["snapshot_ids"], churn["code_ref"]) == (1, "bob", ["s1"], "git:aaa111")
    detail = queries.version_detail(engine, "churn", 2, as_of=AsOf.at(at(3, 12)))
    # On 3 March at noon v2 was evaluated, not yet approved: the later approval is not shown.
    assert (detail["status"], detail["approved_by"]) == ("evaluated", None)
    assert [h["status"] for h in detail["history"]] == ["trained", "evaluated"]
    assert detail["history"][-1]["to"] is None


def test_before_a_model_existed_it_is_unknown(scripted, engine):
    project(scripted.log, engine)
    with pytest.raises(NotFound, match="unknown model 'fraud' as of"):
        queries.model_versions(engine, "fraud", as_of=AsOf.at(at(1, 23)))
    assert [m["model"] for m in queries.list_models(engine, as_of=AsOf.at(at(1, 23)))] == ["churn"]


@pytest.mark.parametrize("label, churn_in_production", [("churn v2 to production", 2), ("churn rollback to v1", 1)])
def test_as_of_a_log_position(scripted, engine, new_db_url, open_engine, label, churn_in_production):
    project(scripted.log, engine)
    position = scripted.positions[label]
    cut = AsOf.at_positions({position.partition: position.offset})
    assert production(queries.deployments(engine, as_of=cut))["churn"][0] == churn_in_production
    folded = build(scripted.log, new_db_url(), as_of=cut)
    try:
        assert production(queries.deployments(folded))["churn"][0] == churn_in_production
        assert _answers(folded) == _answers(engine, cut)
        deploys = queries.audit(folded, model="churn", event_type="ModelDeployed")
        assert deploys[-1]["position"] == str(position)
    finally:
        folded.dispose()


def test_views_cut_at_a_position_stay_put_like_a_cut_at_an_instant(scripted, engine, new_db_url, open_engine):
    position = scripted.positions["churn v2 drift"]
    cut = AsOf.at_positions({position.partition: position.offset})
    project(scripted.log, engine, as_of=cut)
    frozen = db.dump(engine)
    assert queries.status(engine)["as_of"] == f"position {position}"
    with pytest.raises(InputError, match=f"built as of position {position}"):
        Runner(engine).run(scripted.log)
    with pytest.raises(InputError, match="--rebuild"):
        project(scripted.log, engine)
    assert db.dump(engine) == frozen
    folded = build(scripted.log, new_db_url(), as_of=cut)
    try:
        assert _answers(engine) == _answers(folded)
    finally:
        folded.dispose()

    project(scripted.log, engine, rebuild=True)
    assert queries.status(engine)["as_of"] is None
    whole = build(scripted.log, new_db_url())
    try:
        assert db.dump(engine) == db.dump(whole)
    finally:
        whole.dispose()


def test_views_cut_at_an_instant_refuse_to_be_brought_forward(scripted, engine):
    project(scripted.log, engine, as_of=AsOf.at(at(4, 12)))
    with pytest.raises(InputError, match="built as of 2026-03-04T12:00:00.000000Z"):
        Runner(engine).run(scripted.log)
    assert queries.status(engine)["as_of"] == "2026-03-04T12:00:00.000000Z"
    project(scripted.log, engine, rebuild=True)
    assert queries.status(engine)["as_of"] is None
    assert production(queries.deployments(engine)) == EXPECTED[-1][1]


def test_views_cut_before_the_first_event_are_marked_and_stay_empty(scripted, engine):
    """An auditor asking about a day before anything happened gets empty views that
    a later query does not quietly bring up to the present."""
    report = project(scripted.log, engine, as_of=AsOf.at(at(1, 0)))
    assert report.records == 0
    assert queries.status(engine)["as_of"] == "2026-03-01T00:00:00.000000Z"
    with pytest.raises(InputError, match="built as of 2026-03-01T00:00:00.000000Z"):
        Runner(engine).run(scripted.log)
    assert queries.list_models(engine) == []


def test_cli_as_of_rebuilds_the_views_as_they_were(scripted, db_url, new_db_url, open_engine):
    log_url = scripted.log.url
    result = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "project", "--as-of", "2026-03-04T12:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "as of 2026-03-04T12:00:00.000000Z" in result.output
    expected = build(scripted.log, new_db_url(), as_of=AsOf.at(at(4, 12)))
    try:
        assert db.dump(open_engine(db_url)) == db.dump(expected)
    finally:
        expected.dispose()
    refused = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "project"])
    assert refused.exit_code == 2
    assert "--rebuild" in refused.output

    position = scripted.positions["churn v1 to staging"]
    by_position = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "project", "--as-of-position", str(position)])
    assert by_position.exit_code == 0, by_position.output
    assert production(queries.deployments(open_engine(db_url))) == {"churn": (1, "2026-03-02T09:00:00.000000Z", "bob", ["s1"])}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--as-of", "yesterday"], "malformed time"),
        (["--as-of-position", "0-12"], "malformed log position"),
        (["--as-of-position", "0:1,0:2"], "twice"),
        (["--as-of", "2026-03-01", "--as-of-position", "0:1"], "one of"),
        (["--follow", "--as-of", "2026-03-01"], "cannot be combined"),
    ],
)
def test_cli_refuses_a_malformed_cut_and_changes_nothing(scripted, tmp_path, args, message):
    views = tmp_path / "untouched.db"
    result = CliRunner().invoke(main, ["--log", scripted.log.url, "--db", f"sqlite:///{views}", "project", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not views.exists()
