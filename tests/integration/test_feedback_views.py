"""Field feedback in the operators' views: the registry (``ledger models``,
``ledger show``) shows each deployed version's latest field performance beside its
offline evaluation; the audit trail and lineage hold the feedback and the alert;
as-of cuts leave out what came later."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_feedback_cli import M, POOR, world  # noqa: F401 - fixture

from ledger.cli import main
from ledger.client import Ledger
from ledger.events import FeedbackRecorded, ModelDeployed, PerformanceDegraded


@pytest.fixture
def recorded(world):  # noqa: F811
    tmp, log_url = world
    views = f"sqlite:///{tmp / 'views.db'}"

    def ledger(*args, expect=0):
        result = CliRunner().invoke(main, ["--log", log_url, "--db", views, *args])
        assert result.exit_code == expect, result.output
        return result

    ledger(
        "feedback", "record", f"{M}@1", "--data", str(tmp / "poor.csv"), "--environment", "production",
        "--actor", "technicians", "--data-dir", str(tmp / "data"), expect=6,
    )
    with Ledger.open(log_url) as log:
        events = list(log.events(M))
    return ledger, events


def test_show_a_version_puts_field_performance_beside_the_offline_evaluation(recorded):
    ledger, events = recorded
    feedback = next(e for e in events if isinstance(e, FeedbackRecorded))
    text = ledger("show", f"{M}@1").stdout
    section = text.split("Field performance")[1].split("History")[0]
    assert "in production by technicians" in section
    assert "10 labelled (1 unlabelled), 4 alarms, 1 confirmed" in section
    assert "DEGRADED accuracy 0.5 < 0.8" in section
    assert "offline accuracy=0.86" in section
    assert str(feedback.event_id) in section

    detail = json.loads(ledger("show", f"{M}@1", "--json").stdout)
    (report,) = detail["field_performance"]
    assert report["metrics"]["precision"] == 0.25 and report["offline_metrics"]["accuracy"] == 0.86
    assert [(a["metric"], a["value"], a["threshold"]) for a in report["alerts"]] == [("accuracy", 0.5, 0.8)]


def test_models_and_the_version_table_show_the_deployed_versions_field_performance(recorded):
    ledger, _ = recorded
    models = ledger("models").stdout
    assert "production: accuracy=0.5" in models and "DEGRADED accuracy 0.5 < 0.8" in models
    listed = json.loads(ledger("models", "--json").stdout)
    assert listed[0]["field"]["production"]["metrics"]["false_alarm_rate"] == pytest.approx(3 / 7)
    versions = json.loads(ledger("show", M, "--json").stdout)["versions"]
    assert versions[0]["field"]["production"]["alarms"] == 4
    assert "DEGRADED" in ledger("show", M).stdout


def test_the_audit_trail_and_lineage_hold_the_feedback_and_the_alert(recorded):
    ledger, events = recorded
    trail = ledger("audit", "--model", M).stdout
    assert "field feedback on v1 in production: 10 labelled predictions, 4 alarms, 1 confirmed" in trail
    assert "degradation of v1 in production: accuracy 0.5 below threshold 0.8 (evaluation" in trail
    only = ledger("audit", "--type", "PerformanceDegraded", "--json").stdout
    assert [row["event_type"] for row in json.loads(only)] == ["PerformanceDegraded"]

    feedback = next(e for e in events if isinstance(e, FeedbackRecorded))
    alert = next(e for e in events if isinstance(e, PerformanceDegraded))
    down = json.loads(ledger("lineage", f"feedback:{M}/{feedback.event_id}", "--downstream", "--format", "json").stdout)
    assert f"degradation:{M}/{alert.event_id}" in {n["node_id"] for n in down["nodes"]}


def test_as_of_before_the_feedback_shows_none_of_it(recorded, world):  # noqa: F811
    ledger, events = recorded
    _, log_url = world
    deployed = next(e for e in events if isinstance(e, ModelDeployed))
    cut = deployed.recorded_at.isoformat()
    assert json.loads(ledger("show", f"{M}@1", "--json", "--as-of", cut).stdout)["field_performance"] == []
    assert json.loads(ledger("models", "--json", "--as-of", cut).stdout)[0]["field"] == {}
    assert "DEGRADED" not in ledger("models", "--as-of", cut).stdout
    # A position cut at the feedback keeps the feedback but not the alert after it.
    with Ledger.open(log_url) as log:
        position = next(r.position for r in log.log.read(model=M) if r.event_type == "FeedbackRecorded")
    at_feedback = json.loads(
        ledger("show", f"{M}@1", "--json", "--as-of-position", f"{position.partition}:{position.offset}").stdout
    )
    (report,) = at_feedback["field_performance"]
    assert report["alerts"] == []


def test_views_built_step_by_step_equal_views_rebuilt_at_once(world):  # noqa: F811
    from projections import db

    tmp, log_url = world
    stepwise, at_once = f"sqlite:///{tmp / 'stepwise.db'}", f"sqlite:///{tmp / 'at-once.db'}"

    def ledger(*args, views=stepwise, expect=0):
        result = CliRunner().invoke(main, ["--log", log_url, "--db", views, *args])
        assert result.exit_code == expect, result.output
        return result

    ledger("project")
    for data in ("good.csv", "poor.csv"):
        ledger(
            "feedback", "record", f"{M}@1", "--data", str(tmp / data), "--environment", "production",
            "--actor", "technicians", "--data-dir", str(tmp / "data"), expect=(6 if data == "poor.csv" else 0),
        )
        ledger("project")
    ledger("project", views=at_once)
    dumps = [db.dump(db.open_db(url)) for url in (stepwise, at_once)]
    assert '"field_feedback"' in dumps[0] and dumps[0].count('"technicians"') >= 3
    assert dumps[0] == dumps[1]
