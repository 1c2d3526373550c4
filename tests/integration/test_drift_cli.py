"""``ledger data snapshot``, ``ledger train`` and ``ledger drift check`` as a user
runs them, on the embedded log: output, exit codes, idempotence, and bad input
leaving the ledger unchanged."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from drift_world import events_of, write_files

from ledger.cli import main
from ledger.client import Ledger
from ledger.events import DataSnapshotted, DriftDetected, ModelTrained

MODEL = "cancer"


@pytest.fixture
def env(tmp_path):
    files = write_files(tmp_path / "files")
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    runner = CliRunner()
    environ = {
        "LEDGER_LOG": log_url,
        "LEDGER_DB": f"sqlite:///{tmp_path / 'views.db'}",
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }

    def ledger(*args, input=None):
        return runner.invoke(main, list(args), env=environ, input=input, catch_exceptions=False)

    return files, log_url, ledger


def _count(log_url):
    with Ledger.open(log_url) as ledger:
        return len(events_of(ledger, MODEL))


def _deploy_v1(files, ledger):
    snap = ledger(
        "data", "snapshot", MODEL, "--dataset", "cancer-data", "--contract", str(files.contract),
        "--data", str(files.reference), "--actor", "alice", "--json",
    )
    assert snap.exit_code == 0, snap.output
    snapshot_id = json.loads(snap.output)[0]["snapshot_id"]
    trained = ledger("train", MODEL, "--snapshot", snapshot_id, "--actor", "alice", "--json")
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)[0]["version"] == 1
    for command, actor, fields in (
        ("approve", "bob", {"model": MODEL, "version": 1}),
        ("deploy", "carol", {"model": MODEL, "version": 1, "environment": "production"}),
    ):
        result = ledger("emit", command, "--actor", actor, "--json", "-", input=json.dumps(fields))
        assert result.exit_code == 0, result.output
    return snapshot_id


def test_snapshot_is_idempotent_and_reports_itself(env):
    files, log_url, ledger = env
    args = ("data", "snapshot", MODEL, "--dataset", "cancer-data", "--contract", str(files.contract),
            "--data", str(files.reference), "--actor", "alice", "--json")
    first = json.loads(ledger(*args).output)[0]
    second = json.loads(ledger(*args).output)[0]
    assert first["new"] is True and second["new"] is False
    assert first["snapshot_id"] == second["snapshot_id"] == "cancer-data-" + first["content_hash"][7:19]
    assert first["rows"] == len(files.reference.read_text().splitlines()) - 1  # all but the header
    assert _count(log_url) == 1


def test_bad_data_or_contract_exits_2_and_records_nothing(env, tmp_path):
    files, log_url, ledger = env
    broken = tmp_path / "broken.csv"
    header, first_row, *rest = files.reference.read_text().splitlines()
    blank_radius = "," + first_row.split(",", 1)[1]  # the contract rejects missing values
    broken.write_text("\n".join([header, blank_radius, *rest]) + "\n")
    bad_contract = tmp_path / "contract.json"
    bad_contract.write_text('{"columns": [{"name": "x", "dtype": "complex"}]}')
    for data, contract in ((broken, files.contract), (files.reference, bad_contract)):
        result = ledger("data", "snapshot", MODEL, "--dataset", "d", "--contract", str(contract),
                        "--data", str(data), "--actor", "alice")
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ")
    assert _count(log_url) == 0


def test_drift_check_no_drift_then_drift_once(env):
    files, log_url, ledger = env
    _deploy_v1(files, ledger)

    calm = ledger("drift", "check", f"{MODEL}@1", "--data", str(files.same))
    assert calm.exit_code == 0, calm.output
    assert "no drift" in calm.output
    assert "mean_radius" in calm.output  # the per-feature table

    shifted = ledger("drift", "check", f"{MODEL}@1", "--data", str(files.shifted), "--json")
    assert shifted.exit_code == 5, shifted.output
    assert "DRIFT DETECTED" in shifted.stderr
    table = {row["feature"]: row for row in json.loads(shifted.stdout)}
    assert table["mean_radius"]["drift"] == "psi,ks"
    again = ledger("drift", "check", f"{MODEL}@1", "--data", str(files.shifted))
    assert again.exit_code == 5 and "already recorded" in again.output

    with Ledger.open(log_url) as ledger_:
        alerts = events_of(ledger_, MODEL, DriftDetected)
        snapshots = events_of(ledger_, MODEL, DataSnapshotted)
        assert ledger_.verify(MODEL).ok
    assert len(alerts) == 1 and len(snapshots) == 3  # reference, calm data, shifted data
    alert = alerts[0]
    assert alert.feature == "mean_radius" and alert.metric == "psi" and alert.value >= alert.threshold == 0.2
    assert alert.current_snapshot_id == snapshots[-1].snapshot_id
    assert alert.reference_snapshot_id == snapshots[0].snapshot_id
    assert alert.causation_id is None
    assert {d.feature for d in alert.feature_drift} >= {"mean_radius", "mean_texture"}


def test_metric_and_threshold_options(env):
    files, log_url, ledger = env
    _deploy_v1(files, ledger)
    lenient = ledger("drift", "check", f"{MODEL}@1", "--data", str(files.shifted), "--metric", "ks", "--threshold", "0.9")
    assert lenient.exit_code == 0, lenient.output
    strict = ledger("drift", "check", f"{MODEL}@1", "--data", str(files.same), "--metric", "ks", "--threshold", "0.01")
    assert strict.exit_code == 5, strict.output
    with Ledger.open(log_url) as ledger_:
        (alert,) = events_of(ledger_, MODEL, DriftDetected)
    assert (alert.metric, alert.threshold) == ("ks", 0.01)


@pytest.mark.parametrize("data", ["shifted", "same"])
def test_a_version_not_deployed_there_is_refused_and_the_ledger_unchanged(env, data):
    # Drift or not: the answer must not depend on the data when the question is wrong.
    files, log_url, ledger = env
    _deploy_v1(files, ledger)
    before = _count(log_url)
    result = ledger("drift", "check", f"{MODEL}@1", "--data", str(getattr(files, data)), "--environment", "staging")
    assert result.exit_code == 1, result.output
    assert "not deployed to staging" in result.output
    assert _count(log_url) == before  # not even the new snapshot


@pytest.mark.parametrize(
    "args,code,message",
    [
        (("drift", "check", "cancer", "--data", "x.csv"), 2, "MODEL@VERSION"),
        (("drift", "check", "cancer@7", "--data", "{same}"), 4, "no version 7"),
        (("drift", "check", "nobody@1", "--data", "{same}"), 4, "no version 1"),
        (("drift", "check", "cancer@1", "--data", "missing.csv"), 2, "does not exist"),
        (("drift", "check", "cancer@1", "--data", "{same}", "--threshold", "-1"), 2, "threshold"),
        (("train", "cancer", "--snapshot", "nope", "--actor", "alice"), 4, "no snapshot"),
        (("data", "snapshot", "cancer", "--dataset", "d", "--contract", "{binary}", "--data", "{same}", "--actor", "a"), 2, "contract"),
        (("train", "cancer", "--snapshot", "{snapshot}", "--actor", "alice", "--threshold", "auc"), 2, "METRIC=MIN"),
        (("train", "cancer", "--snapshot", "{snapshot}", "--actor", "alice", "--threshold", "auc=0.7"), 2, "unknown metric"),
        (("train", "cancer", "--snapshot", "{snapshot}", "--actor", "alice", "--threshold", "roc_auc=nan"), 2, "roc_auc"),
    ],
)
def test_bad_input_has_a_clear_error_and_exit_code(env, args, code, message):
    files, log_url, ledger = env
    snapshot_id = _deploy_v1(files, ledger)
    before = _count(log_url)
    binary = files.root / "binary.json"
    binary.write_bytes(b"\xb6\x00\xff not text")
    args = [a.format(same=files.same, snapshot=snapshot_id, binary=binary) for a in args]
    result = ledger(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert _count(log_url) == before


def test_new_data_must_honour_the_reference_contract(env, tmp_path):
    files, log_url, ledger = env
    _deploy_v1(files, ledger)
    fahrenheit_radius = tmp_path / "wrong-unit.csv"
    fahrenheit_radius.write_text(files.same.read_text().replace("mean_radius[mm]", "mean_radius[F]", 1))
    result = ledger("drift", "check", f"{MODEL}@1", "--data", str(fahrenheit_radius))
    assert result.exit_code == 2
    assert "cannot convert 'F' (temperature) to 'mm' (length)" in result.output
    in_cm = tmp_path / "centimetres.csv"
    lines = files.same.read_text().splitlines()
    header, rows = lines[0].replace("mean_radius[mm]", "mean_radius[cm]"), lines[1:]
    rows = [",".join([repr(float(r.split(",")[0]) / 10), *r.split(",")[1:]]) for r in rows]
    in_cm.write_text("\n".join([header, *rows]) + "\n")
    converted = ledger("drift", "check", f"{MODEL}@1", "--data", str(in_cm))
    assert converted.exit_code == 0, converted.output  # same data in other units: no drift


def test_train_prints_the_new_version_and_its_lineage(env):
    files, log_url, ledger = env
    snapshot_id = _deploy_v1(files, ledger)
    result = ledger("train", MODEL, "--snapshot", snapshot_id, "--actor", "dora", "--threshold", "roc_auc=0.99", "--json")
    assert result.exit_code == 0, result.output
    assert "evaluation did not pass" in result.stderr
    row = json.loads(result.stdout)[0]
    assert row["version"] == 2 and row["passed"] is False
    with Ledger.open(log_url) as ledger_:
        trained = [e for e in events_of(ledger_, MODEL, ModelTrained) if e.version == 2][0]
    assert trained.snapshot_ids == (snapshot_id,) and trained.trigger == "manual"


def test_concurrent_checks_of_the_same_data_record_one_alert(env, tmp_path):
    import threading

    from ledger.data import datasets, monitoring

    files, log_url, ledger = env
    _deploy_v1(files, ledger)
    results, errors = [], []
    start = threading.Barrier(4)

    def check():
        try:
            with Ledger.open(log_url) as own:
                start.wait()
                results.append(monitoring.check_drift(own, MODEL, 1, files.shifted, store=datasets.DataStore(tmp_path / "d")))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.alert.event_id for r in results}) == 1
    assert sum(r.alert_created for r in results) == 1
    with Ledger.open(log_url) as ledger_:
        assert len(events_of(ledger_, MODEL, DriftDetected)) == 1
        assert len(events_of(ledger_, MODEL, DataSnapshotted)) == 2
        assert ledger_.verify(MODEL).ok


def test_the_same_data_registered_again_under_another_name_reuses_its_snapshot(env):
    files, log_url, ledger = env
    args = ("data", "snapshot", MODEL, "--contract", str(files.contract), "--data", str(files.reference), "--actor", "alice", "--json")
    first = json.loads(ledger(*args, "--dataset", "cancer-data").output)[0]
    again = json.loads(ledger(*args, "--dataset", "cancer-data", "--snapshot-id", "cancer-v2").output)[0]
    renamed = json.loads(ledger(*args, "--dataset", "cancer").output)[0]
    assert again["snapshot_id"] == renamed["snapshot_id"] == first["snapshot_id"]
    assert again["new"] is False and renamed["new"] is False
    assert _count(log_url) == 1
