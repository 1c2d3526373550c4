"""The retraining consumer on real logs and databases: one new version per drift
alert, whatever is re-run, replayed, redelivered or killed half-way."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from drift_world import deploy_first_version, events_of, own_postgres, write_files  # noqa: F401 - fixture

from consumers import store as consumer_store
from consumers.retrain import Retrainer, Settings, retraining_ids
from consumers.runner import Runner
from ledger.data import datasets, monitoring
from ledger.client import Ledger
from ledger.config import open_log
from ledger.events import DriftDetected, ModelEvaluated, ModelRetired, ModelTrained

ROOT = Path(__file__).resolve().parents[2]
MODEL = "cancer"


@pytest.fixture(autouse=True)
def _fresh_engines():
    yield
    consumer_store.dispose_engines()


@pytest.fixture(
    params=[
        "sqlite-log/sqlite-db",
        pytest.param("sqlite-log/postgres-db", marks=pytest.mark.postgres),
        pytest.param("kafka-log/postgres-db", marks=[pytest.mark.kafka, pytest.mark.postgres]),
    ]
)
def urls(request, tmp_path):
    log_kind, db_kind = request.param.split("/")
    log_url = request.getfixturevalue("kafka_log_url") if log_kind == "kafka-log" else f"sqlite:///{tmp_path / 'log.db'}"
    db_url = request.getfixturevalue("own_postgres") if db_kind == "postgres-db" else f"sqlite:///{tmp_path / 'views.db'}"
    return log_url, db_url


@pytest.fixture
def world(tmp_path, urls):
    """v1 deployed, then a drift alert on shifted data. Returns (log, db, alert, dirs)."""
    log_url, db_url = urls
    files = write_files(tmp_path / "files")
    store = datasets.DataStore(tmp_path / "data")
    with Ledger.open(log_url) as ledger:
        deploy_first_version(ledger, MODEL, files, store=store, artifacts=tmp_path / "artifacts")
        check = monitoring.check_drift(ledger, MODEL, 1, files.shifted, store=store)
    assert check.alert is not None
    return {"log": log_url, "db": db_url, "alert": check.alert, "files": files, "store": store, "tmp": tmp_path}


def _run(world, db_url=None, *, from_beginning=False):
    settings = Settings(artifacts_dir=world["tmp"] / "artifacts")
    consumer = Retrainer(world["log"], settings, env={})
    event_log = open_log(world["log"])
    try:
        runner = Runner(consumer, event_log, db_url or world["db"])
        return runner.run_once(max_wait=0, from_beginning=from_beginning)
    finally:
        consumer.close()
        event_log.close()


def _retrainings(log_url):
    with Ledger.open(log_url) as ledger:
        stream = events_of(ledger, MODEL)
        report = ledger.verify(MODEL)
    assert report.ok, report.problems
    trained = [e for e in stream if isinstance(e, ModelTrained) and e.trigger == "drift"]
    evaluated = [e for e in stream if isinstance(e, ModelEvaluated) and e.version in {t.version for t in trained}]
    return trained, evaluated


def test_a_drift_alert_causes_exactly_one_retraining(world, tmp_path):
    alert = world["alert"]
    report = _run(world)
    assert (report.new_effects, report.delivered, report.dead_effects) == (1, 1, 0)

    trained, evaluated = _retrainings(world["log"])
    assert len(trained) == 1 and len(evaluated) == 1
    new = trained[0]
    assert new.version == 2 and new.parent_version == 1
    assert new.trigger_alert_id == str(alert.event_id) == new.causation_id
    assert new.snapshot_ids == (alert.current_snapshot_id,)
    assert new.actor == "retrainer"
    assert (new.event_id, evaluated[0].event_id) == retraining_ids(alert.event_id)
    assert evaluated[0].causation_id == str(alert.event_id)
    assert evaluated[0].evaluation_snapshot_id == alert.current_snapshot_id
    assert datasets.path_of(new.artifact_uri).is_file()

    # Re-running, replaying the whole log, and losing the consumer's database
    # entirely: no second training is recorded.
    assert _run(world).new_effects == 0
    assert _run(world, from_beginning=True).new_effects == 0
    rebuilt = _run(world, f"sqlite:///{tmp_path / 'another-views.db'}")
    assert (rebuilt.new_effects, rebuilt.delivered) == (1, 1)
    trained_again, _ = _retrainings(world["log"])
    assert [t.event_id for t in trained_again] == [new.event_id]


def test_each_alert_gets_its_own_retraining_and_none_approves(world):
    with Ledger.open(world["log"]) as ledger:
        again = monitoring.check_drift(ledger, MODEL, 1, world["files"].shifted)  # the same data: the same alert
        other = monitoring.check_drift(ledger, MODEL, 1, world["files"].shifted_more, metric="ks")
    assert not again.alert_created and again.alert.event_id == world["alert"].event_id
    assert other.alert_created

    assert _run(world).delivered == 2
    trained, _ = _retrainings(world["log"])
    assert sorted(t.trigger_alert_id for t in trained) == sorted(str(a.event_id) for a in (world["alert"], other.alert))
    assert sorted(t.version for t in trained) == [2, 3]
    with Ledger.open(world["log"]) as ledger:
        state = ledger.state(MODEL)
    assert state.deployed == {"production": 1}
    assert all(state.versions[t.version].approved_by is None for t in trained)


@pytest.mark.parametrize(
    "urls",
    [
        "sqlite-log/sqlite-db",
        pytest.param("kafka-log/postgres-db", marks=[pytest.mark.kafka, pytest.mark.postgres]),
    ],
    indirect=True,
)
@pytest.mark.slow  # three consumer processes, each importing scikit-learn
def test_killed_between_training_and_recording_then_restarted(world):
    """The consumer process is SIGKILLed (fault point retrain-after-artifact) after
    the model file is written and before anything is recorded; the restarted
    consumer trains again, deterministically, and records exactly one version."""
    artifacts = world["tmp"] / "artifacts"
    env = {
        **os.environ,
        "LEDGER_ARTIFACTS_DIR": str(artifacts),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "ledger.cli", "--log", world["log"], "--db", world["db"], "consume", "retrain", "--once"]
    before = set((artifacts / MODEL).glob("*.joblib"))

    crashed = subprocess.run(
        command, env={**env, "LEDGER_FAULT_POINT": "retrain-after-artifact"}, capture_output=True, text=True, timeout=300
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    left_behind = set((artifacts / MODEL).glob("*.joblib")) - before
    assert len(left_behind) == 1  # trained and written …
    assert _retrainings(world["log"])[0] == []  # … but nothing recorded
    status = consumer_store.Store(consumer_store.engine_for(world["db"]), "retrain").count_by_status()
    assert status == {"sending": 1}

    # Restarted with a short lease: the job the dead process held is taken up again.
    restarted = subprocess.run(
        command, env={**env, "LEDGER_RETRAIN_LEASE_SECONDS": "0.01"}, capture_output=True, text=True, timeout=300
    )
    assert restarted.returncode == 0, restarted.stderr
    assert "1 delivered" in restarted.stderr

    trained, evaluated = _retrainings(world["log"])
    assert len(trained) == 1 and len(evaluated) == 1
    assert trained[0].trigger_alert_id == str(world["alert"].event_id)
    # Deterministic training: the recorded model is byte for byte the one the dead
    # process had written.
    assert {datasets.path_of(trained[0].artifact_uri)} == {p.resolve() for p in left_behind}

    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert _retrainings(world["log"])[0] == trained


@pytest.mark.parametrize("urls", ["sqlite-log/sqlite-db"], indirect=True)
def test_a_retraining_the_rules_refuse_is_dead_lettered_not_retried(world):
    with Ledger.open(world["log"]) as ledger:
        ledger.emit(ModelRetired(model=MODEL, actor="ops", reason="replaced by a vendor model"))
    report = _run(world)
    assert (report.delivered, report.dead_effects) == (0, 1)
    letters = consumer_store.Store(consumer_store.engine_for(world["db"]), "retrain").list_dead_letters()
    assert len(letters) == 1 and "retired" in letters[0]["reason"]
    assert _retrainings(world["log"])[0] == []
    assert _run(world).dead_effects == 0  # dead stays dead: no retry loop

    # An operator finds the job and its reason from the command line.
    from click.testing import CliRunner

    from ledger.cli import main

    listed = CliRunner().invoke(
        main, ["--log", world["log"], "--db", world["db"], "notifications", "--consumer", "retrain", "--dead-letters", "--json"]
    )
    assert listed.exit_code == 0, listed.output
    (letter,) = json.loads(listed.stdout)
    assert letter["event_id"] == str(world["alert"].event_id) and "retired" in letter["reason"]


@pytest.mark.parametrize("urls", ["sqlite-log/sqlite-db"], indirect=True)
def test_an_alert_below_its_threshold_trains_nothing(world):
    with Ledger.open(world["log"]) as ledger:
        quiet = ledger.emit(
            DriftDetected(
                model=MODEL, version=1, environment="production", actor="monitor", metric="psi",
                value=0.05, threshold=0.2, reference_snapshot_id=world["alert"].reference_snapshot_id,
            )
        )
    assert quiet.event.crossed is False
    assert _run(world).new_effects == 1  # only the crossed alert from the world
    trained, _ = _retrainings(world["log"])
    assert [t.trigger_alert_id for t in trained] == [str(world["alert"].event_id)]


def _retrain_once(log_url: str, artifacts: str, alert_id: str, payload: dict, barrier, results) -> None:
    """One process of the retraining consumer running one job (module level for spawn)."""
    consumer = Retrainer(log_url, Settings(artifacts_dir=Path(artifacts)), env={})
    try:
        barrier.wait(120)
        results.put(("ok", consumer.retrain(alert_id, payload)))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        consumer.close()


@pytest.mark.parametrize(
    "urls",
    ["sqlite-log/sqlite-db", pytest.param("kafka-log/postgres-db", marks=[pytest.mark.kafka, pytest.mark.postgres])],
    indirect=True,
)
@pytest.mark.slow  # two processes, each importing scikit-learn
def test_two_processes_running_one_job_record_one_version(world):
    """A lease that ran out under a slow training lets a second process start the
    same job: two real processes train at once, one records, the other
    recognises the result."""
    from consumers.retrain import policy

    spawn = multiprocessing.get_context("spawn")
    alert = world["alert"]
    payload = policy(alert)[0].payload
    barrier, results = spawn.Barrier(2), spawn.Queue()
    args = (world["log"], str(world["tmp"] / "artifacts"), str(alert.event_id), payload, barrier, results)
    processes = [spawn.Process(target=_retrain_once, args=args) for _ in range(2)]
    for process in processes:
        process.start()
    answers = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    assert [kind for kind, _ in answers] == ["ok", "ok"], answers
    assert sorted(text.split()[0] for _, text in answers) == ["already", "trained"], answers
    trained, evaluated = _retrainings(world["log"])
    assert len(trained) == 1 and len(evaluated) == 1


def test_with_ledger_url_the_retraining_is_recorded_through_the_service(world, tmp_path):
    """Where only the service may write (broker ACLs, compose.yaml), the retrainer
    reads the log but records through the service, as its principal."""
    from tests.integration.service_harness import Server, make_principals

    tokens = make_principals(tmp_path / "principals.toml", {"retrainer": ["snapshot", "train", "evaluate"]})
    with Server(world["log"], tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'service-views.db'}") as running:
        settings = Settings(artifacts_dir=world["tmp"] / "artifacts")
        consumer = Retrainer(world["log"], settings, env={"LEDGER_URL": running.url, "LEDGER_TOKEN": tokens["retrainer"]})
        event_log = open_log(world["log"])
        try:
            report = Runner(consumer, event_log, world["db"]).run_once(max_wait=0)
        finally:
            consumer.close()
            event_log.close()
        metrics = httpx.get(f"{running.url}/metrics").text
        served = running.output()
    assert (report.new_effects, report.delivered, report.dead_effects) == (1, 1, 0)
    trained, evaluated = _retrainings(world["log"])
    assert [(t.actor, t.recorded_by) for t in trained] == [("retrainer", None)]
    assert (trained[0].event_id, evaluated[0].event_id) == retraining_ids(world["alert"].event_id)
    # The service accepted them (one batch: the training and its evaluation).
    assert 'ledger_events_accepted_total{event_type="ModelTrained"} 1.0' in metrics, metrics
    assert 'ledger_events_accepted_total{event_type="ModelEvaluated"} 1.0' in metrics
    assert "Traceback" not in served
