"""Time guarantees of the views, on a history where the times differ as they do in
life: every event is recorded a day after it happened (``occurred_at`` one day
before ``recorded_at``), and the host clock steps back once. A view that cut on
``occurred_at``, or a cut that was not inclusive, or a stream whose ``recorded_at``
stepped back, would give other answers below.

late:  s1 (recorded 2 Mar 09:00), v1 trained (10:00), evaluated (11:00), then the
       clock steps back to 10:30 for the approval — recorded at 11:00 all the same —
       and production (13:00). Each happened the day before, at the same hour.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from ledger.append import Appender
from ledger.backends.sqlite import SqliteLog
from ledger.cli import main
from ledger.events import ModelApproved, ModelDeployed
from projections import queries
from projections.asof import AsOf, iso
from projections.runner import build, project

from projection_scenario import evaluate, snapshot, train

MICROSECOND = timedelta(microseconds=1)


def march(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=timezone.utc)


# label, host clock at the append, the event (occurred one day before that clock)
HISTORY = [
    ("s1", march(2, 9), snapshot("late", "s1")),
    ("trained", march(2, 10), train("late", 1, ("s1",), "git:111")),
    ("evaluated", march(2, 11), evaluate("late", 1, "s1", 0.9)),
    ("approved", march(2, 10, 30), ModelApproved(model="late", version=1, actor="bob", reason="ok")),
    ("deployed", march(2, 13), ModelDeployed(model="late", version=1, actor="deployer", environment="production")),
]


@pytest.fixture
def history(tmp_path):
    log = SqliteLog(tmp_path / "log.db")
    clock = [march(1, 0)]
    appender = Appender(log, clock=lambda: clock[0])
    accepted = {}
    for label, when, draft in HISTORY:
        clock[0] = when
        event = draft.model_copy(update={"occurred_at": when - timedelta(days=1)})
        accepted[label] = appender.append([event])[0].event
    yield log, accepted
    log.close()


def test_recorded_at_never_steps_back_and_differs_from_occurred_at(history):
    _, accepted = history
    recorded = [accepted[label].recorded_at for label, _, _ in HISTORY]
    assert recorded == [march(2, 9), march(2, 10), march(2, 11), march(2, 11), march(2, 13)]
    for label, when, _ in HISTORY:
        assert accepted[label].occurred_at == when - timedelta(days=1)


def _status(engine, cut):
    versions = queries.model_versions(engine, "late", as_of=cut)
    return {v["version"]: v["status"] for v in versions}


def _lineage_kinds(engine, cut):
    nodes = queries.lineage(engine, "snapshot:late/s1", direction="down", as_of=cut)["nodes"]
    return sorted(n["kind"] for n in nodes)


def _audit_types(engine, cut):
    return [r["event_type"] for r in queries.audit(engine, model="late", as_of=cut)]


# (cut, status of v1, event types in the audit trail, lineage kinds below s1)
CUTS = [
    pytest.param(march(2, 9) - MICROSECOND, None, [], None, id="just-before-the-first-recording"),
    pytest.param(march(2, 9), {}, ["DataSnapshotted"], ["snapshot"], id="exactly-at-the-first-recording"),
    pytest.param(
        march(2, 10, 45), {1: "trained"}, ["DataSnapshotted", "ModelTrained"],
        ["model_version", "snapshot", "training_run"], id="between-trained-and-the-clock-step",
    ),
    pytest.param(
        march(2, 11) - MICROSECOND, {1: "trained"}, ["DataSnapshotted", "ModelTrained"],
        ["model_version", "snapshot", "training_run"], id="just-before-evaluation-and-approval",
    ),
    pytest.param(
        march(2, 11), {1: "approved"}, ["DataSnapshotted", "ModelTrained", "ModelEvaluated", "ModelApproved"],
        ["approval", "evaluation", "model_version", "snapshot", "training_run"], id="exactly-at-evaluation-and-approval",
    ),
    pytest.param(
        march(2, 13) - MICROSECOND, {1: "approved"},
        ["DataSnapshotted", "ModelTrained", "ModelEvaluated", "ModelApproved"],
        ["approval", "evaluation", "model_version", "snapshot", "training_run"], id="just-before-the-deployment",
    ),
    pytest.param(
        march(2, 13), {1: "deployed"},
        ["DataSnapshotted", "ModelTrained", "ModelEvaluated", "ModelApproved", "ModelDeployed"],
        ["approval", "deployment", "evaluation", "model_version", "snapshot", "training_run"],
        id="exactly-at-the-deployment",
    ),
    # Everything had *occurred* by 1 Mar 13:00, but the ledger knew nothing yet.
    pytest.param(march(1, 23, 59), None, [], None, id="after-everything-occurred-before-anything-was-recorded"),
]


@pytest.mark.parametrize("cut, statuses, audit_types, lineage_kinds", CUTS)
def test_registry_lineage_and_audit_cut_exactly_at_recorded_at(
    history, engine, new_db_url, open_engine, cut, statuses, audit_types, lineage_kinds
):
    log, _ = history
    project(log, engine)
    as_of = AsOf.at(cut)
    folded = build(log, new_db_url(), as_of=as_of)
    try:
        for views, view_cut in ((engine, as_of), (folded, None)):
            known = [m["model"] for m in queries.list_models(views, as_of=view_cut)]
            if statuses is None:
                assert known == []
                assert _audit_types(views, view_cut) == []
                continue
            assert known == ["late"]
            assert _status(views, view_cut) == statuses
            assert _audit_types(views, view_cut) == audit_types
            assert _lineage_kinds(views, view_cut) == lineage_kinds
            production = [d for d in queries.deployments(views, as_of=view_cut) if d["environment"] == "production"]
            assert [(d["version"], d["since"]) for d in production] == (
                [(1, iso(march(2, 13)))] if statuses == {1: "deployed"} else []
            )
    finally:
        folded.dispose()


def _cli(log, db_url, *args):
    return CliRunner().invoke(main, ["--log", log.url, "--db", db_url, *args])


@pytest.mark.parametrize(
    "cut, deployed",
    [
        pytest.param("2026-03-02T12:59:59.999999Z", {}, id="a-microsecond-before"),
        pytest.param("2026-03-02T13:00:00Z", {"production": 1}, id="exactly-at"),
        pytest.param("2026-03-01T13:00:00Z", None, id="at-occurred-at"),
    ],
)
def test_cli_models_and_show_cut_exactly_at_the_deployments_instant(history, db_url, cut, deployed):
    log, accepted = history
    models = _cli(log, db_url, "models", "--as-of", cut, "--json")
    assert models.exit_code == 0, models.output
    rows = json.loads(models.output)
    if deployed is None:
        assert rows == []
        shown = _cli(log, db_url, "show", "late@1", "--as-of", cut, "--json")
        assert shown.exit_code != 0 and "late" in shown.output
        return
    assert [(r["model"], r["deployed"]) for r in rows] == [("late", deployed)]
    shown = _cli(log, db_url, "show", "late@1", "--as-of", cut, "--json")
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["status"] == ("deployed" if deployed else "approved")
    assert detail["approved_by"] == "bob"
