"""The notification policy and messages: pure functions of an event."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from consumers.notify_policy import (
    DEFAULT_EVENTS,
    Route,
    message,
    policy,
    subject,
    summary,
)
from ledger.events import (
    ApprovalRejected,
    ColumnSpec,
    DataContract,
    DataSnapshotted,
    DriftDetected,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
)

AT = datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc)

DEPLOY = ModelDeployed(model="churn", version=3, actor="deployer", environment="production", replaced_version=2, occurred_at=AT)
DRIFT = DriftDetected(
    model="churn", version=3, actor="monitor", environment="production", metric="psi",
    feature="tenure", value=0.3141, threshold=0.2, reference_snapshot_id="s7", occurred_at=AT,
)


@pytest.mark.parametrize(
    "event, expected",
    [
        (DEPLOY, "[ledger] churn v3 deployed to production by deployer"),
        (ModelApproved(model="churn", version=3, actor="alice", reason="ok"), "[ledger] churn v3 approved by alice"),
        (ApprovalRejected(model="churn", version=4, actor="alice"), "[ledger] churn v4 rejected by alice"),
        (DRIFT, "[ledger] churn v3 drifted in production on tenure: psi 0.3141 (threshold 0.2)"),
        (ModelRetired(model="churn", version=2, actor="ops"), "[ledger] churn v2 retired by ops"),
        (ModelRetired(model="churn", actor="ops"), "[ledger] churn retired (every version) by ops"),
        (
            ModelEvaluated(model="churn", version=3, actor="ci", evaluation_snapshot_id="s", metrics={}, passed=True),
            "[ledger] ModelEvaluated on churn v3 by ci",
        ),
    ],
)
def test_subject_says_what_happened_to_which_version_and_who_did_it(event, expected):
    assert subject(event) == expected


def test_summary_adds_the_reason_and_the_replaced_version():
    assert summary(DEPLOY) == "churn v3 deployed to production by deployer; replacing v2"
    rejected = ApprovalRejected(model="churn", version=4, actor="alice", reason="auc below 0.8")
    assert summary(rejected) == "churn v4 rejected by alice; reason: auc below 0.8"
    assert "reference snapshot s7" in summary(DRIFT)


def test_message_has_the_documented_fields_and_the_whole_event():
    body = message(DEPLOY)
    assert set(body) == {"event_id", "event_type", "model", "version", "actor", "occurred_at", "summary", "event"}
    assert body["event_id"] == str(DEPLOY.event_id)
    assert body["occurred_at"] == "2026-03-03T10:00:00+00:00"
    assert body["event"]["replaced_version"] == 2 and body["event"]["environment"] == "production"


DEPLOY_MESSAGE = {
    "event_id": str(DEPLOY.event_id),
    "event_type": "ModelDeployed",
    "model": "churn",
    "version": 3,
    "actor": "deployer",
    "occurred_at": "2026-03-03T10:00:00+00:00",
    "summary": "churn v3 deployed to production by deployer; replacing v2",
    "event": {
        "event_id": str(DEPLOY.event_id),
        "model": "churn",
        "version": 3,
        "actor": "deployer",
        "recorded_by": None,
        "occurred_at": "2026-03-03T10:00:00Z",
        "recorded_at": None,
        "causation_id": None,
        "correlation_id": None,
        "sequence": None,
        "prev_hash": None,
        "environment": "production",
        "replaced_version": 2,
        "traffic_percent": 100,
    },
}
"""What the documentation promises a receiver gets for DEPLOY, written out by hand."""


def test_one_delivery_per_channel_for_the_events_people_act_on():
    routes = [Route("ops"), Route("mail"), Route("file")]
    intents = policy(DEPLOY, DEFAULT_EVENTS, routes)
    assert [i.channel for i in intents] == ["ops", "mail", "file"]
    assert all(i.payload == intents[0].payload for i in intents)
    assert intents[0].payload == {"subject": "[ledger] churn v3 deployed to production by deployer", "message": DEPLOY_MESSAGE}
    snapshot = DataSnapshotted(
        model="churn", actor="etl", dataset="d", snapshot_id="s", content_hash="h", row_count=1,
        contract=DataContract(columns=(ColumnSpec(name="x"),)),
    )
    assert policy(snapshot, DEFAULT_EVENTS, routes) == []


def test_a_channel_can_follow_its_own_event_types():
    routes = [Route("pager", frozenset({"DriftDetected"})), Route("everything")]
    assert [i.channel for i in policy(DRIFT, DEFAULT_EVENTS, routes)] == ["pager", "everything"]
    assert [i.channel for i in policy(DEPLOY, DEFAULT_EVENTS, routes)] == ["everything"]
    assert [i.channel for i in policy(DEPLOY, ("DriftDetected",), routes)] == []


def test_the_same_event_read_back_from_its_bytes_gives_the_same_deliveries():
    # A redelivered or replayed event is a new object decoded from the stored bytes:
    # its deliveries (their identity and content) must not change.
    from ledger import codec

    stored = DRIFT.model_copy(update={"sequence": 4, "prev_hash": "0" * 64, "recorded_at": AT})
    again = codec.decode(codec.encode(stored).data)
    assert again is not stored
    (first,), (second,) = policy(stored, DEFAULT_EVENTS, [Route("ops")]), policy(again, DEFAULT_EVENTS, [Route("ops")])
    assert first == second
    assert first.channel == "ops"
    assert first.payload["subject"] == "[ledger] churn v3 drifted in production on tenure: psi 0.3141 (threshold 0.2)"
    assert first.payload["message"]["event"]["recorded_at"] == "2026-03-03T10:00:00Z"


def test_a_degradation_alert_is_notified_like_drift():
    from ledger import samples

    alert = samples.degraded("churn", "f1b2", version=3, value=0.25, threshold=0.6)
    assert subject(alert) == "[ledger] churn v3 degraded in production: precision 0.25 < threshold 0.6"
    assert "threshold from the field policy, feedback f1b2" in summary(alert)
    routes = [Route("pager", frozenset({"DriftDetected", "PerformanceDegraded"})), Route("everything")]
    assert [i.channel for i in policy(alert, DEFAULT_EVENTS, routes)] == ["pager", "everything"]
    assert policy(samples.feedback("churn", 3), DEFAULT_EVENTS, routes) == []  # the report itself is not paged
