"""The registry view after a scripted history, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from projection_scenario import play

from ledger.backends.sqlite import SqliteLog
from ledger.errors import NotFound
from projections import queries
from projections.runner import project


@pytest.fixture
def views(tmp_path, engine):
    log = SqliteLog(tmp_path / "log.db")
    script = play(log)
    project(log, engine)
    yield engine, script
    log.close()


def test_models_list_status_versions_and_what_is_deployed(views):
    engine, _ = views
    models = {m["model"]: m for m in queries.list_models(engine)}
    assert set(models) == {"churn", "fraud"}
    assert models["churn"]["status"] == "retired"
    assert models["churn"]["retired_at"] == "2026-03-07T09:00:00.000000Z"
    assert models["churn"]["deployed"] == {}
    assert models["churn"]["versions"] == 2
    assert models["fraud"] == {
        "model": "fraud",
        "status": "active",
        "created_at": "2026-03-02T11:00:00.000000Z",
        "created_by": "etl",
        "retired_at": None,
        "versions": 2,
        "latest_version": 2,
        "deployed": {"production": 2},
    }


def test_versions_carry_status_who_trained_and_approved_and_training_facts(views):
    engine, _ = views
    fraud = {v["version"]: v for v in queries.model_versions(engine, "fraud")}
    assert fraud[1]["status"] == "rejected"
    assert fraud[1]["rejected_by"] == "dave"
    assert fraud[1]["decision_reason"] == "auc too low"
    assert fraud[1]["last_evaluation_passed"] is False
    assert fraud[2]["status"] == "deployed"
    assert fraud[2]["deployed_in"] == ["production"]
    assert fraud[2]["approved_by"] == "dave"
    assert fraud[2]["trained_by"] == "alice"
    assert fraud[2]["parent_version"] == 1
    assert fraud[2]["code_ref"] == "git:fff001"
    assert fraud[2]["snapshot_ids"] == ["f1"]
    churn = {v["version"]: v for v in queries.model_versions(engine, "churn")}
    assert {v: s["status"] for v, s in churn.items()} == {1: "retired", 2: "retired"}
    assert churn[2]["retire_reason"] == "drifted"  # retired on its own before the model was


def test_version_detail_has_metrics_parameters_history_and_deployments(views):
    engine, script = views
    detail = queries.version_detail(engine, "churn", 1)
    assert detail["hyperparameters"] == {"learning_rate": "0.1", "max_depth": "3"}
    assert detail["artifact_uri"] == "s3://models/churn/v1"
    assert detail["event_id"] == script.event_ids["churn v1 trained"]
    [evaluation] = detail["evaluations"]
    assert evaluation["metrics"] == {"auc": 0.91, "f1": 0.71}
    assert evaluation["thresholds"] == {"auc": 0.7}
    assert evaluation["evaluated_by"] == "ci"
    assert [(h["status"], h["change"], h["by"]) for h in detail["history"]] == [
        ("trained", "ModelTrained", "alice"),
        ("evaluated", "ModelEvaluated", "ci"),
        ("approved", "ModelApproved", "bob"),
        ("deployed", "ModelDeployed", "deployer"),  # production
        ("deployed", "ModelDeployed", "deployer"),  # staging as well
        ("deployed", "ModelDeployed", "deployer"),  # v2 replaced it in production; still in staging
        ("deployed", "ModelDeployed", "oncall"),  # rolled back into production
        ("retired", "ModelRetired", "owner"),
    ]
    assert detail["history"][-1]["to"] is None
    assert all(h["to"] == n["from"] for h, n in zip(detail["history"], detail["history"][1:]))
    assert [(d["environment"], d["since"], d["ended_at"], d["end_reason"]) for d in detail["deployments"]] == [
        ("production", "2026-03-02T09:00:00.000000Z", "2026-03-04T09:00:00.000000Z", "replaced by v2"),
        ("staging", "2026-03-02T10:00:00.000000Z", "2026-03-07T09:00:00.000000Z", "model retired"),
        ("production", "2026-03-05T10:00:00.000000Z", "2026-03-07T09:00:00.000000Z", "model retired"),
    ]


def test_deployments_say_since_when_who_approved_and_on_which_data(views):
    engine, _ = views
    [fraud] = queries.deployments(engine)
    assert (fraud["model"], fraud["environment"], fraud["version"]) == ("fraud", "production", 2)
    assert fraud["since"] == "2026-03-03T14:00:00.000000Z"
    assert (fraud["deployed_by"], fraud["approved_by"], fraud["snapshot_ids"]) == ("deployer", "dave", ["f1"])
    history = queries.deployments(engine, model="churn", environment="production", history=True)
    assert [(d["version"], d["replaced_version"], d["end_reason"]) for d in history] == [
        (1, None, "replaced by v2"),
        (2, 1, "replaced by v1"),
        (1, 2, "model retired"),
    ]


def test_unknown_model_or_version_is_not_found(views):
    engine, _ = views
    with pytest.raises(NotFound, match="nosuch"):
        queries.model_versions(engine, "nosuch")
    with pytest.raises(NotFound, match="no version 9"):
        queries.version_detail(engine, "churn", 9)
    with pytest.raises(NotFound):
        queries.deployments(engine, model="nosuch")
