"""Lead-time metrics on hand-built rows with answers worked out by hand."""

from __future__ import annotations

import pytest

from projections import metrics
from projections.asof import AsOf
from projections.metrics import Alert, Deployment, Event, Facts


def t(day: int, hour: int, minute: int = 0) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:{minute:02d}:00.000000Z"


H = 3600.0


def ledger() -> Facts:
    """churn (partition 0): snapshot 1st 09:00, v1 trained 10:00, evaluated 11:00 and
    again 13:00, approved 14:00, staging 2nd 09:00, production 2nd 12:00; drift on v1
    in production 4th 08:00; v2 trained 4th 10:00, evaluated 11:00, approved 15:00,
    production 5th 08:00 (replaces v1: 24 h after the alert).
    fraud (partition 1): snapshot 2nd 00:00, v1 trained 2nd 06:00, evaluated 07:00,
    approved 09:00, production 3rd 06:00; drift on v1 in production 6th 00:00, not
    answered (open)."""
    n = iter(range(100))
    events = [
        Event("DataSnapshotted", "churn", None, t(1, 9), 0, next(n)),
        Event("ModelTrained", "churn", 1, t(1, 10), 0, next(n)),
        Event("ModelEvaluated", "churn", 1, t(1, 11), 0, next(n)),
        Event("ModelEvaluated", "churn", 1, t(1, 13), 0, next(n)),
        Event("ModelApproved", "churn", 1, t(1, 14), 0, next(n)),
        Event("ModelDeployed", "churn", 1, t(2, 9), 0, next(n)),
        Event("ModelDeployed", "churn", 1, t(2, 12), 0, next(n)),
        Event("DriftDetected", "churn", 1, t(4, 8), 0, next(n)),
        Event("ModelTrained", "churn", 2, t(4, 10), 0, next(n)),
        Event("ModelEvaluated", "churn", 2, t(4, 11), 0, next(n)),
        Event("ModelApproved", "churn", 2, t(4, 15), 0, next(n)),
        Event("ModelDeployed", "churn", 2, t(5, 8), 0, next(n)),
    ]
    m = iter(range(100))
    events += [
        Event("DataSnapshotted", "fraud", None, t(2, 0), 1, next(m)),
        Event("ModelTrained", "fraud", 1, t(2, 6), 1, next(m)),
        Event("ModelEvaluated", "fraud", 1, t(2, 7), 1, next(m)),
        Event("ModelApproved", "fraud", 1, t(2, 9), 1, next(m)),
        Event("ModelDeployed", "fraud", 1, t(3, 6), 1, next(m)),
        Event("DriftDetected", "fraud", 1, t(6, 0), 1, next(m)),
    ]
    by_time = {(e.model, e.at): e for e in events}
    deployments = [
        Deployment("churn", 1, "staging", t(2, 9), 0, by_time[("churn", t(2, 9))].offset),
        Deployment("churn", 1, "production", t(2, 12), 0, by_time[("churn", t(2, 12))].offset),
        Deployment("churn", 2, "production", t(5, 8), 0, by_time[("churn", t(5, 8))].offset),
        Deployment("fraud", 1, "production", t(3, 6), 1, by_time[("fraud", t(3, 6))].offset),
    ]
    alerts = [
        Alert("a-churn", "churn", 1, "production", t(4, 8), 0, by_time[("churn", t(4, 8))].offset),
        Alert("a-fraud", "fraud", 1, "production", t(6, 0), 1, by_time[("fraud", t(6, 0))].offset),
    ]
    return Facts(tuple(events), tuple(deployments), tuple(alerts))


def summary(answer, metric, environment=None) -> dict:
    rows = [r for r in answer.summary if r["metric"] == metric and (environment is None or r["environment"] == environment)]
    assert len(rows) == 1, rows
    return rows[0]


def test_percentiles_median_and_nearest_rank_p90():
    assert metrics.median([3.0, 1.0, 2.0]) == 2.0
    assert metrics.median([1.0, 4.0]) == 2.5
    assert metrics.p90([1.0, 4.0]) == 4.0
    assert metrics.p90(list(map(float, range(1, 11)))) == 9.0
    assert metrics.p90(list(map(float, range(1, 12)))) == 10.0
    assert metrics.median([]) is None and metrics.p90([]) is None


def test_every_metric_on_the_hand_built_ledger():
    answer = metrics.compute(ledger())
    # churn: 1st 09:00 → 2nd 12:00 = 27 h; fraud: 2nd 00:00 → 3rd 06:00 = 30 h.
    s = summary(answer, "snapshot_to_production")
    assert (s["count"], s["median_seconds"], s["p90_seconds"]) == (2, 28.5 * H, 30 * H)
    # churn v1 26 h, churn v2 22 h, fraud v1 24 h.
    s = summary(answer, "training_to_production")
    assert (s["count"], s["median_seconds"], s["p90_seconds"]) == (3, 24 * H, 26 * H)
    # from the *last* evaluation before the approval: churn v1 1 h, v2 4 h, fraud v1 2 h.
    s = summary(answer, "approval_wait")
    assert (s["count"], s["median_seconds"], s["p90_seconds"]) == (3, 2 * H, 4 * H)
    # churn's alert answered in 24 h; fraud's still open.
    s = summary(answer, "drift_to_replacement")
    assert (s["count"], s["open"], s["median_seconds"]) == (1, 1, 24 * H)
    # production: 2nd 12:00, 3rd 06:00, 5th 08:00 → gaps 18 h and 50 h.
    s = summary(answer, "deploy_interval", "production")
    assert (s["deployments"], s["count"], s["median_seconds"], s["p90_seconds"]) == (3, 2, 34 * H, 50 * H)
    assert s["per_week"] == pytest.approx(3 / (68 / 168), abs=1e-3)
    s = summary(answer, "deploy_interval", "staging")
    assert (s["deployments"], s["count"], s["per_week"]) == (1, 0, None)


def test_as_of_cut_sees_what_the_ledger_knew_then():
    # On the 4th at noon churn's alert is open and v2 is not yet in production.
    answer = metrics.compute(ledger(), as_of=AsOf.at("2026-03-04T12:00:00Z"))
    s = summary(answer, "drift_to_replacement")
    assert (s["count"], s["open"]) == (0, 1)
    assert summary(answer, "training_to_production")["count"] == 2
    assert summary(answer, "approval_wait")["count"] == 2  # v2 approved only at 15:00


def test_position_cut():
    answer = metrics.compute(ledger(), as_of=AsOf.at_positions({0: 6}))  # churn up to its production deployment
    assert summary(answer, "snapshot_to_production")["count"] == 1
    assert summary(answer, "drift_to_replacement")["open"] == 0


def test_model_filter():
    answer = metrics.compute(ledger(), models=["fraud"])
    s = summary(answer, "snapshot_to_production")
    assert (s["count"], s["median_seconds"]) == (1, 30 * H)
    assert summary(answer, "drift_to_replacement")["open"] == 1
    assert all(m.model == "fraud" for m in answer.measurements)


def test_window_counts_what_ended_inside_it_and_alerts_opened_inside_it():
    answer = metrics.compute(ledger(), since=t(3, 0), until=t(5, 23))
    # Ending in the window: fraud v1 in production (3rd), churn v2 (5th).
    assert summary(answer, "training_to_production")["count"] == 2
    assert summary(answer, "approval_wait")["count"] == 1  # churn v2 on the 4th
    s = summary(answer, "drift_to_replacement")
    assert (s["count"], s["open"]) == (1, 0)  # fraud's alert was raised on the 6th
    s = summary(answer, "deploy_interval", "production")
    assert s["deployments"] == 2


def test_retirement_without_replacement_is_not_an_open_alert():
    facts = ledger()
    retired = Event("ModelRetired", "fraud", 1, t(7, 0), 1, 99)
    facts = Facts(facts.events + (retired,), facts.deployments, facts.alerts)
    assert summary(metrics.compute(facts), "drift_to_replacement")["open"] == 0


def test_redeploying_the_alerted_version_does_not_answer_its_alert():
    facts = ledger()
    again = Deployment("fraud", 1, "production", t(6, 3), 1, 98)
    facts = Facts(facts.events, facts.deployments + (again,), facts.alerts)
    assert summary(metrics.compute(facts), "drift_to_replacement")["open"] == 1


def test_human_durations():
    assert metrics.human(42.5) == "42.5s"
    assert metrics.human(3725) == "1h 2m"
    assert metrics.human(90061) == "1d 1h"
    assert metrics.human(None) == ""
