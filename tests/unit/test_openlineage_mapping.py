"""The OpenLineage mapping, pure: every ledger event type becomes an event valid
against the official OpenLineage schema, its facets valid against theirs."""

from __future__ import annotations

import uuid

import pytest
from openlineage_schema import problems

from consumers.openlineage import Mapper, as_dict, training_run_id
from ledger import samples
from ledger.events import ApprovalRejected, ModelDeployed, ModelRetired

ALERT = str(uuid.uuid4())


def events():
    return [
        samples.snapshot("churn", "s1"),
        samples.trained("churn", 1),
        samples.evaluated("churn", 1),
        ApprovalRejected(model="churn", version=1, actor="carol", reason="<b>not yet</b>"),
        samples.approved("churn", 1),
        ModelDeployed(model="churn", version=1, actor="deployer", environment="production", replaced_version=None),
        samples.drift("churn", 1).model_copy(update={"event_id": uuid.UUID(ALERT), "current_snapshot_id": "s2"}),
        samples.snapshot("churn", "s2"),
        samples.trained("churn", 2, snapshots=("s2",), parent_version=1, trigger="drift", trigger_alert_id=ALERT),
        ModelRetired(model="churn", version=1, actor="owner", reason="replaced"),
        ModelRetired(model="churn", actor="owner", reason="product closed"),
    ]


@pytest.mark.parametrize("event", events(), ids=lambda e: e.event_type)
def test_every_event_type_maps_to_a_valid_openlineage_event(event):
    emitted = as_dict(Mapper().map(event))
    assert problems(emitted) == []
    assert emitted["eventTime"] == event.occurred_at.isoformat()


def test_schema_check_can_fail():
    emitted = as_dict(Mapper().map(samples.trained("churn", 1)))
    emitted["run"]["runId"] = "not-a-uuid"
    del emitted["job"]["name"]
    emitted["run"]["facets"]["ledgerTraining"]["trigger"] = "whim"
    found = problems(emitted)
    assert any("job" in p and "name" in p for p in found)
    assert any("ledgerTraining" in p and "whim" in p for p in found)


def test_snapshot_is_a_versioned_dataset_with_its_contract_as_schema():
    emitted = as_dict(Mapper(namespace="acme").map(samples.snapshot("churn", "s1")))
    dataset = emitted["dataset"]
    assert (dataset["namespace"], dataset["name"]) == ("acme", "churn/s1")
    assert dataset["facets"]["version"]["datasetVersion"] == "sha256:s1"
    fields = {f["name"]: f for f in dataset["facets"]["schema"]["fields"]}
    assert fields and all("type" in f for f in fields.values())
    assert dataset["facets"]["symlinks"]["identifiers"][0]["name"] == "sensors"


def test_training_is_a_run_from_snapshots_to_a_model_typed_dataset():
    emitted = as_dict(Mapper().map(samples.trained("churn", 1)))
    assert emitted["eventType"] == "COMPLETE"
    assert emitted["job"]["name"] == "churn.train"
    assert emitted["run"]["runId"] == training_run_id("churn", 1)
    assert [(d["namespace"], d["name"]) for d in emitted["inputs"]] == [("ledger", "churn/s1")]
    (output,) = emitted["outputs"]
    assert output["name"] == "churn"
    assert output["facets"]["datasetType"]["datasetType"] == "MODEL"
    assert output["facets"]["version"]["datasetVersion"] == "1"
    assert "parent" not in emitted["run"]["facets"]


def test_retraining_names_its_parent_run_and_its_drift_alert():
    mapper = Mapper()
    alert = as_dict(mapper.map(samples.drift("churn", 1).model_copy(update={"event_id": uuid.UUID(ALERT)})))
    first = as_dict(mapper.map(samples.trained("churn", 1)))
    retrained = as_dict(
        mapper.map(samples.trained("churn", 2, snapshots=("s2",), parent_version=1, trigger="drift", trigger_alert_id=ALERT))
    )
    parent = retrained["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == first["run"]["runId"]
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("ledger", "churn.train")
    training = retrained["run"]["facets"]["ledgerTraining"]
    assert training["alertRunId"] == alert["run"]["runId"] == ALERT
    assert alert["job"]["name"] == "churn.drift_check"
    assert training["parentVersion"] == 1


def test_approvals_and_deployments_are_custom_facets_on_the_model():
    approval = as_dict(Mapper().map(samples.approved("churn", 1)))["dataset"]["facets"]["ledgerApproval"]
    assert (approval["decision"], approval["by"], approval["version"]) == ("approved", "bob", 1)
    assert approval["_schemaURL"].endswith("LedgerFacets-1-0-0.json#/$defs/LedgerApprovalDatasetFacet")
    deployment = as_dict(Mapper().map(samples.deployed("churn", 1)))["dataset"]
    assert deployment["facets"]["ledgerDeployment"]["environment"] == "production"
    assert deployment["facets"]["version"]["datasetVersion"] == "1"


def test_the_mapping_is_deterministic():
    event = samples.trained("churn", 1)
    assert as_dict(Mapper().map(event)) == as_dict(Mapper().map(event))
