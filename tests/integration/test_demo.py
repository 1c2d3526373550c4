"""`ledger demo`, as a newcomer runs it: in an empty directory, no server; run
twice, nothing is corrupted. And the same story on Kafka + PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


def ledger(*args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", "from ledger.cli import main; main(prog_name='ledger')", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_story(output: str, model: str) -> None:
    assert f"The story of {model}" in output
    assert "error: four-eyes" in output
    assert "error: deploy-only-approved" in output
    assert "DRIFT DETECTED" in output
    lineage = output.split(f"$ ledger lineage {model}@2 --upstream", 1)[1].split("\n── ", 1)[0]
    # v2's lineage reaches both snapshots: the January one (through v1) and the
    # heat-wave one registered by the drift check, and the alert that caused it
    assert "snapshot pump-sensors-2026-01" in lineage
    assert re.search(r"snapshot pump-sensors-[0-9a-f]{12}", lineage)
    assert "(drift_alert)" in lineage
    # The second half: field feedback, not drift, sends v2 back (lineage of v3).
    # (stdout and stderr are read apart: the verdict lines come after the story)
    assert "no drift: worst psi" in output and output.count("DRIFT DETECTED") == 1
    assert "DEGRADATION: precision" in output and "(field-policy)" in output
    lineage_v3 = output.split(f"$ ledger lineage {model}@3 --upstream", 1)[1].split("\n── ", 1)[0]
    assert "triggered ← precision degraded" in lineage_v3 and "(degradation_alert) · field-technicians" in lineage_v3
    assert "raised ← field feedback" in lineage_v3 and "feedback_data ← field-feedback snapshot" in lineage_v3
    assert "DEGRADED precision" in output.split(f"$ ledger show {model}@2", 1)[1]
    assert re.search(rf"{model}\s+active\s+3\s+3\s+production=v3 staging=v3", output)
    assert f"Done: {model} told end to end; the ledger verifies." in output
    assert "$ ledger verify\n" in output and ": intact" in output
    assert re.search(r"co-signed ledger\.demo/log/\d+@\d+", output)
    assert re.search(rf"receipt ok: event [0-9a-f-]{{36}} is leaf \d+ of ledger\.demo/log/\d+@\d+", output)
    assert re.search(r"checkpoint ledger\.demo/log/\d+@\d+: consistent", output)
    # it ends with the lead times (the alert answered by v2, none open) and the report
    assert f"$ ledger metrics --model {model}" in output
    assert re.search(r"drift_to_replacement\s+1\s+0\s", output)
    assert re.search(r"training_to_production\s+production\s+3\s", output)  # v1, v2 and v3 reached production
    assert f"wrote the audit report to demo/{model}/report.html" in output


@pytest.mark.slow
def test_demo_runs_in_an_empty_directory_twice_without_corrupting_anything(tmp_path):
    first = ledger("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    check_story(first.stdout + first.stderr, "pump-failure")
    assert (tmp_path / ".ledger" / "log.db").exists()
    report = (tmp_path / "demo" / "pump-failure" / "report.html").read_text(encoding="utf-8")
    assert 'data-model="pump-failure" data-version="2"' in report and "INTACT" in report

    second = ledger("demo", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    check_story(second.stdout + second.stderr, "pump-failure-2")

    verified = ledger("verify", cwd=tmp_path)
    assert verified.returncode == 0
    assert "2 stream(s), 50 event(s): intact" in verified.stdout
    models = ledger("models", "--json", cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    assert '"pump-failure"' in models.stdout and '"pump-failure-2"' in models.stdout


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.postgres
def test_demo_on_kafka_and_postgresql(tmp_path, kafka_log_url, fresh_postgres):
    env = {"LEDGER_LOG": kafka_log_url, "LEDGER_DB": fresh_postgres}
    result = ledger("demo", cwd=tmp_path, env_extra=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_story(result.stdout + result.stderr, "pump-failure")
    assert "kafka://" in result.stdout
    verified = ledger("verify", cwd=tmp_path, env_extra=env)
    assert verified.returncode == 0
    assert "1 stream(s), 25 event(s): intact" in verified.stdout


def test_demo_with_a_workdir_it_cannot_create_is_one_line_and_records_nothing(tmp_path):
    from click.testing import CliRunner

    from ledger.cli import main
    from ledger.config import open_log

    (tmp_path / "afile").write_text("not a folder")
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    result = CliRunner().invoke(
        main, ["--log", log_url, "--db", f"sqlite:///{tmp_path / 'views.db'}", "demo", "--workdir", str(tmp_path / "afile" / "demo")]
    )
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot write the demo's files in ")
    with open_log(log_url) as log:
        assert list(log.read()) == []
