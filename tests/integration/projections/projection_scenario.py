"""A scripted history at chosen instants (the appender's clock is set before each
action), and what the views must say about it at moments in between.

churn:  v1 trained on s1 and approved by bob → production (2 Mar) and staging;
        v2 trained on s2 (retrained from v1), approved by carol → production (4 Mar);
        drift on v2 (5 Mar 09:00), rolled back to v1 (5 Mar 10:00);
        v2 retired (6 Mar); the whole model retired (7 Mar).
fraud:  v1 trained, a failed evaluation, rejected; v2 passes, approved, production (3 Mar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ledger.append import Appender
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
    ModelTrained,
)
from ledger.log import EventLog, Position

CONTRACT = DataContract(columns=(ColumnSpec(name="tenure", unit="month"), ColumnSpec(name="churned", dtype="int")))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=timezone.utc)


@dataclass
class Scripted:
    """The accepted events' positions by label, and the log they live in."""

    log: EventLog
    positions: dict[str, Position] = field(default_factory=dict)
    event_ids: dict[str, str] = field(default_factory=dict)


def snapshot(model: str, snapshot_id: str, dataset: str = "customers") -> DataSnapshotted:
    return DataSnapshotted(
        model=model, actor="etl", dataset=dataset, snapshot_id=snapshot_id,
        content_hash=f"sha256:{snapshot_id}", row_count=1000, contract=CONTRACT,
    )


def train(model: str, version: int, snapshots: tuple[str, ...], code: str, parent: int | None = None, **extra) -> ModelTrained:
    return ModelTrained(
        model=model, version=version, actor="alice", snapshot_ids=snapshots, code_ref=code,
        hyperparameters={"max_depth": version + 2, "learning_rate": 0.1},
        artifact_uri=f"s3://models/{model}/v{version}", artifact_hash=f"sha256:{model}-{version}",
        parent_version=parent, **extra,
    )


def evaluate(model: str, version: int, snapshot_id: str, auc: float) -> ModelEvaluated:
    return ModelEvaluated(
        model=model, version=version, actor="ci", evaluation_snapshot_id=snapshot_id,
        metrics={"auc": auc, "f1": round(auc - 0.2, 2)}, thresholds={"auc": 0.7}, passed=auc >= 0.7,
    )


def play(log: EventLog) -> Scripted:
    """Append the scripted history to ``log``."""
    now = [at(1, 0)]
    appender = Appender(log, clock=lambda: now[0])
    script = Scripted(log)

    def do(label: str, when: datetime, event) -> None:
        now[0] = when
        accepted = appender.append([event.model_copy(update={"occurred_at": when})])[0]
        script.positions[label] = accepted.position
        script.event_ids[label] = str(accepted.event.event_id)

    do("churn s1", at(1, 9), snapshot("churn", "s1"))
    do("churn v1 trained", at(1, 10), train("churn", 1, ("s1",), "git:aaa111"))
    do("churn v1 evaluated", at(1, 11), evaluate("churn", 1, "s1", 0.91))
    do("churn v1 approved", at(1, 12), ModelApproved(model="churn", version=1, actor="bob", reason="beats baseline"))
    do("churn v1 to production", at(2, 9), ModelDeployed(model="churn", version=1, actor="deployer", environment="production"))
    do("churn v1 to staging", at(2, 10), ModelDeployed(model="churn", version=1, actor="deployer", environment="staging"))
    do("fraud s1", at(2, 11), snapshot("fraud", "f1", dataset="transactions"))
    do("fraud v1 trained", at(2, 12), train("fraud", 1, ("f1",), "git:fff000"))
    do("fraud v1 evaluated", at(2, 13), evaluate("fraud", 1, "f1", 0.55))
    do("fraud v1 rejected", at(2, 14), ApprovalRejected(model="fraud", version=1, actor="dave", reason="auc too low"))
    do("churn s2", at(3, 8), snapshot("churn", "s2"))
    do("churn v2 trained", at(3, 9), train("churn", 2, ("s2",), "git:bbb222", parent=1))
    do("churn v2 evaluated", at(3, 10), evaluate("churn", 2, "s2", 0.93))
    do("fraud v2 trained", at(3, 11), train("fraud", 2, ("f1",), "git:fff001", parent=1))
    do("fraud v2 evaluated", at(3, 12), evaluate("fraud", 2, "f1", 0.8))
    do("fraud v2 approved", at(3, 13), ModelApproved(model="fraud", version=2, actor="dave"))
    do("fraud v2 to production", at(3, 14), ModelDeployed(model="fraud", version=2, actor="deployer", environment="production"))
    do("churn v2 approved", at(3, 15), ModelApproved(model="churn", version=2, actor="carol", reason="better auc"))
    do("churn v2 to production", at(4, 9), ModelDeployed(model="churn", version=2, actor="deployer", environment="production"))
    do(
        "churn v2 drift",
        at(5, 9),
        DriftDetected(
            model="churn", version=2, actor="monitor", environment="production", metric="psi",
            feature="tenure", value=0.4, threshold=0.2, reference_snapshot_id="s2",
        ),
    )
    do("churn rollback to v1", at(5, 10), ModelDeployed(model="churn", version=1, actor="oncall", environment="production"))
    do("churn v2 retired", at(6, 9), ModelRetired(model="churn", version=2, actor="owner", reason="drifted"))
    do("churn retired", at(7, 9), ModelRetired(model="churn", actor="owner", reason="product closed"))
    return script


def production(deployments: list[dict]) -> dict[str, tuple[int, str, str | None, list[str]]]:
    """What is in production per model: version, since, approved by, trained on."""
    return {
        d["model"]: (d["version"], d["since"], d["approved_by"], d["snapshot_ids"])
        for d in deployments
        if d["environment"] == "production"
    }


# (instant, {model: (version in production, since, approved by, trained on)}, {churn version: status})
EXPECTED = [
    (at(1, 23), {}, {1: "approved"}),
    (
        at(3, 12),
        {"churn": (1, "2026-03-02T09:00:00.000000Z", "bob", ["s1"])},
        {1: "deployed", 2: "evaluated"},
    ),
    (
        at(4, 12),
        {
            "churn": (2, "2026-03-04T09:00:00.000000Z", "carol", ["s2"]),
            "fraud": (2, "2026-03-03T14:00:00.000000Z", "dave", ["f1"]),
        },
        {1: "deployed", 2: "deployed"},
    ),
    (
        at(5, 12),
        {
            "churn": (1, "2026-03-05T10:00:00.000000Z", "bob", ["s1"]),
            "fraud": (2, "2026-03-03T14:00:00.000000Z", "dave", ["f1"]),
        },
        {1: "deployed", 2: "approved"},
    ),
    (
        at(6, 12),
        {
            "churn": (1, "2026-03-05T10:00:00.000000Z", "bob", ["s1"]),
            "fraud": (2, "2026-03-03T14:00:00.000000Z", "dave", ["f1"]),
        },
        {1: "deployed", 2: "retired"},
    ),
    (
        at(8, 0),
        {"fraud": (2, "2026-03-03T14:00:00.000000Z", "dave", ["f1"])},
        {1: "retired", 2: "retired"},
    ),
]
