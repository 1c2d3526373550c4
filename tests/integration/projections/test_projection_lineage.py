"""The lineage graph: typed nodes and edges, walked up and down in SQL."""

from __future__ import annotations

import pytest
from projection_scenario import at, play

from ledger.backends.sqlite import SqliteLog
from ledger.errors import InputError, NotFound
from projections import queries
from projections.asof import AsOf
from projections.runner import project
from projections.synthetic import populate


@pytest.fixture
def views(tmp_path, engine):
    log = SqliteLog(tmp_path / "log.db")
    script = play(log)
    project(log, engine)
    yield engine, script
    log.close()


def _kinds(result) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in result["nodes"]:
        found.setdefault(node["kind"], set()).add(node["label"])
    return found


def test_upstream_of_a_version_names_its_data_code_and_parent(views):
    engine, script = views
    result = queries.lineage(engine, queries.resolve_node("churn@2"), direction="up")
    kinds = _kinds(result)
    assert kinds["snapshot"] == {"customers snapshot s1", "customers snapshot s2"}
    assert kinds["model_version"] == {"churn@1", "churn@2"}
    assert kinds["dataset"] == {"customers"}
    runs = [n for n in result["nodes"] if n["kind"] == "training_run"]
    assert {r["attrs"]["code_ref"] for r in runs} == {"git:aaa111", "git:bbb222"}
    edges = {(e["src"], e["kind"], e["dst"]) for e in result["edges"]}
    assert ("version:churn@1", "parent_of", "version:churn@2") in edges
    assert ("snapshot:churn/s2", "input", f"run:churn/{script.event_ids['churn v2 trained']}") in edges
    # Nothing downstream of v2 (its evaluation, deployment, drift) is upstream of it.
    assert "drift_alert" not in kinds and "deployment" not in kinds


def test_downstream_of_a_snapshot_reaches_every_version_deployment_and_alert(views):
    engine, script = views
    result = queries.lineage(engine, "snapshot:churn/s1", direction="down")
    kinds = _kinds(result)
    assert kinds["model_version"] == {"churn@1", "churn@2"}  # v2 through its parent
    assert kinds["deployment"] == {"churn@1 to production", "churn@1 to staging", "churn@2 to production"}
    assert kinds["approval"] == {"churn@1 approved by bob", "churn@2 approved by carol"}
    assert kinds["drift_alert"] == {"psi drift on churn@2 in production"}
    assert "fraud" not in {n["model"] for n in result["nodes"]}
    depths = {n["node_id"]: n["depth"] for n in result["nodes"]}
    assert depths["snapshot:churn/s1"] == 0
    assert depths[f"run:churn/{script.event_ids['churn v1 trained']}"] == 1
    assert depths["version:churn@1"] == 2
    assert depths["version:churn@2"] == 3  # the shortest way: s1 → run → v1 → v2


def test_downstream_of_a_dataset_spans_its_snapshots(views):
    engine, _ = views
    result = queries.lineage(engine, "dataset:customers", direction="down", depth=1)
    assert {n["node_id"] for n in result["nodes"]} == {"dataset:customers", "snapshot:churn/s1", "snapshot:churn/s2"}
    assert {e["kind"] for e in result["edges"]} == {"contains"}


def test_the_chain_from_version_to_drift_alert(views):
    engine, script = views
    result = queries.lineage(engine, "version:churn@2", direction="down")
    by_id = {n["node_id"]: n for n in result["nodes"]}
    drift = by_id[f"drift:churn/{script.event_ids['churn v2 drift']}"]
    assert drift["depth"] == 4  # version → evaluation → approval → deployment → alert
    assert drift["attrs"]["value"] == 0.4
    chain = [e["kind"] for e in result["edges"]]
    assert sorted(chain) == sorted(["evaluated", "reviewed", "deployed", "observed"])


def test_depth_limits_the_walk(views):
    engine, _ = views
    for depth in (0, 1, 2, 3):
        result = queries.lineage(engine, "snapshot:churn/s1", direction="down", depth=depth)
        assert max(n["depth"] for n in result["nodes"]) == depth
        assert all(e["src"] in {n["node_id"] for n in result["nodes"] if n["depth"] < depth} for e in result["edges"])
    assert len(queries.lineage(engine, "snapshot:churn/s1", direction="down", depth=0)["nodes"]) == 1


def test_lineage_as_of_shows_only_what_existed(views):
    engine, _ = views
    before_v2 = queries.lineage(engine, "version:churn@1", direction="down", as_of=AsOf.at(at(2, 23)))
    assert _kinds(before_v2)["deployment"] == {"churn@1 to production", "churn@1 to staging"}
    assert "version:churn@2" not in {n["node_id"] for n in before_v2["nodes"]}
    with pytest.raises(NotFound, match="as of"):
        queries.lineage(engine, "version:churn@2", as_of=AsOf.at(at(2, 23)))


def test_unknown_node_and_bad_arguments(views):
    engine, _ = views
    with pytest.raises(NotFound):
        queries.lineage(engine, "version:churn@9")
    with pytest.raises(InputError):
        queries.lineage(engine, "version:churn@1", direction="sideways")
    with pytest.raises(InputError):
        queries.lineage(engine, "version:churn@1", depth=-1)
    with pytest.raises(InputError):
        queries.resolve_node("churn")
    assert queries.resolve_node("fraud@2") == "version:fraud@2"
    assert queries.resolve_node("snapshot:churn/s1") == "snapshot:churn/s1"


def test_a_deep_history_is_walked_to_any_depth(tmp_path, engine):
    log = SqliteLog(tmp_path / "deep.db")
    populate(log, models=2, rounds=12, seed=3)
    project(log, engine)
    latest = max(v["version"] for v in queries.model_versions(engine, "model-0000"))
    whole = queries.lineage(engine, f"version:model-0000@{latest}", direction="up")
    # Every earlier version of the model is upstream, through retrainings on drift.
    versions = {n["version"] for n in whole["nodes"] if n["kind"] == "model_version"}
    assert versions == set(range(1, latest + 1))
    assert max(n["depth"] for n in whole["nodes"]) > 10
    ten = queries.lineage(engine, f"version:model-0000@{latest}", direction="up", depth=10)
    assert max(n["depth"] for n in ten["nodes"]) == 10
    assert {n["node_id"] for n in ten["nodes"]} < {n["node_id"] for n in whole["nodes"]}
    log.close()
