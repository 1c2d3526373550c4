"""Schema evolution end to end: a log written partly by a release that knew only
ModelDeployed v1 and partly by the current one (ModelDeployed v2 adds
``traffic_percent``, default 100). On the embedded log and on Kafka, with views in
SQLite and PostgreSQL: the old bytes stay as written, decode into the v2 model,
and the views built from the mixed log are the expected rows."""

from __future__ import annotations

import pytest

from ledger import catalogue, codec, samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.events import ModelDeployed
from projections import db, queries
from projections.runner import build, project


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request, tmp_path):
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("kafka_log_url")


def _before_v2() -> catalogue.Catalogue:
    """The catalogue of a release that had not published ModelDeployed v2."""
    current = catalogue.default()
    # Nor any later publication (v4 changed every type's envelope).
    return catalogue.Catalogue([e for e in current.entries() if e.version < 2])


@pytest.fixture
def mixed_log(log_url, monkeypatch):
    old = _before_v2()
    with monkeypatch.context() as release_1:
        # The old release writes: its codec knows ModelDeployed v1 only.
        release_1.setattr(catalogue, "default", lambda: old)
        with Ledger.open(log_url) as ledger:
            for draft in samples.lifecycle("churn"):  # v1 to production
                ledger.emit(draft)
            ledger.emit(samples.deployed("churn", environment="staging"))
    with Ledger.open(log_url) as ledger:  # the current release appends to the same streams
        ledger.emit(samples.trained("churn", 2))
        ledger.emit(samples.evaluated("churn", 2))
        ledger.emit(samples.approved("churn", 2))
        ledger.emit(samples.deployed("churn", 2).model_copy(update={"traffic_percent": 20}))
        for draft in samples.lifecycle("fraud")[:-1]:
            ledger.emit(draft)
        ledger.emit(samples.deployed("fraud").model_copy(update={"traffic_percent": 10}))
    log = open_log(log_url)
    yield log
    log.close()


def test_old_bytes_stay_v1_and_decode_into_the_v2_model(mixed_log):
    current = catalogue.default()
    v1 = next(e for e in current.entries() if (e.event_type, e.version) == ("ModelDeployed", 1))
    v2 = current.latest("ModelDeployed")  # the current one: v2's field, and v4's recorded_by
    assert v2.version >= 2
    deployments = [r for r in mixed_log.read() if r.event_type == "ModelDeployed"]
    written_with = {(r.model, codec.decode(r.data).environment, codec.decode(r.data).version): r.fingerprint for r in deployments}
    assert written_with == {
        ("churn", "production", 1): v1.fingerprint,
        ("churn", "staging", 1): v1.fingerprint,
        ("churn", "production", 2): v2.fingerprint,
        ("fraud", "production", 1): v2.fingerprint,
    }
    decoded = [codec.decode(r.data) for r in deployments]
    assert all(isinstance(e, ModelDeployed) for e in decoded)
    assert sorted((e.model, e.version, e.traffic_percent) for e in decoded) == [
        ("churn", 1, 100), ("churn", 1, 100), ("churn", 2, 20), ("fraud", 1, 10)
    ]
    with Ledger(mixed_log) as ledger:
        assert ledger.verify().ok
        assert ledger.state("churn").deployed == {"production": 2, "staging": 1}


def test_views_from_the_mixed_log_are_the_expected_rows(mixed_log, engine, new_db_url):
    project(mixed_log, engine)
    live = sorted(
        (d["model"], d["environment"], d["version"], d["approved_by"]) for d in queries.deployments(engine)
    )
    assert live == [
        ("churn", "production", 2, "bob"),
        ("churn", "staging", 1, "bob"),
        ("fraud", "production", 1, "bob"),
    ]
    summaries = [r["summary"] for r in queries.audit(engine, event_type="ModelDeployed")]
    assert sorted(summaries) == sorted([
        "deployed v1 to production",
        "deployed v1 to staging",
        "deployed v2 to production, replacing v1 (20% of traffic)",
        "deployed v1 to production (10% of traffic)",
    ]), summaries
    assert [r["chain"] for r in queries.audit(engine)] == ["ok"] * len(list(mixed_log.read()))
    # Rebuilt from scratch, the views are the same rows.
    rebuilt = build(mixed_log, new_db_url())
    try:
        assert db.dump(rebuilt) == db.dump(engine)
    finally:
        rebuilt.dispose()
