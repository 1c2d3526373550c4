"""`ledger metrics` on a real ledger (the scripted history of projection_scenario:
events recorded at chosen instants), on the embedded log with SQLite views."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from projection_scenario import play

from ledger.cli import main
from ledger.config import open_log

H = 3600.0


@pytest.fixture
def ledger_urls(tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        play(log)
    return ["--log", log_url, "--db", f"sqlite:///{tmp_path / 'views.db'}"]


def run(urls, *args):
    result = CliRunner().invoke(main, [*urls, "metrics", *args], catch_exceptions=False)
    return result


def by_metric(rows, metric, environment=None):
    found = [r for r in rows if r["metric"] == metric and (environment is None or r["environment"] == environment)]
    assert len(found) == 1, found
    return found[0]


def test_json_gives_the_lead_times_of_the_scripted_history(ledger_urls):
    result = run(ledger_urls, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    rows = answer["summary"]
    # churn: s1 1st 09:00 → production 2nd 09:00 (24 h); fraud: 2nd 11:00 → 3rd 14:00 (27 h)
    s = by_metric(rows, "snapshot_to_production")
    assert (s["count"], s["median_seconds"], s["p90_seconds"]) == (2, 25.5 * H, 27 * H)
    # churn v1 23 h, churn v2 24 h, fraud v2 3 h
    s = by_metric(rows, "training_to_production")
    assert (s["count"], s["median_seconds"], s["p90_seconds"]) == (3, 23 * H, 24 * H)
    # evaluation → approval: churn v1 1 h, fraud v2 1 h, churn v2 5 h (fraud v1 was rejected)
    s = by_metric(rows, "approval_wait")
    assert (s["count"], s["median_seconds"], s["p90_seconds"]) == (3, 1 * H, 5 * H)
    # drift on churn v2 (5th 09:00) answered by the rollback to v1 an hour later
    s = by_metric(rows, "drift_to_replacement")
    assert (s["count"], s["open"], s["median_seconds"]) == (1, 0, 1 * H)
    s = by_metric(rows, "deploy_interval", "production")
    assert s["deployments"] == 4
    subjects = {(m["metric"], m["subject"]) for m in answer["measurements"]}
    assert ("training_to_production", "fraud@2") in subjects


def test_as_of_and_model_filter(ledger_urls):
    result = run(ledger_urls, "--json", "--as-of", "2026-03-05T09:30:00Z", "--model", "churn")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["summary"]
    s = by_metric(rows, "drift_to_replacement")
    assert (s["count"], s["open"]) == (0, 1)  # the rollback came at 10:00
    assert by_metric(rows, "snapshot_to_production")["count"] == 1


def test_csv_and_table(ledger_urls):
    result = run(ledger_urls, "--csv", "--since", "2026-03-04", "--until", "2026-03-05")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert by_metric(rows, "training_to_production")["count"] == "1"  # churn v2 on the 4th
    table = run(ledger_urls)
    assert table.exit_code == 0
    assert "APPROVAL_WAIT" not in table.output and "approval_wait" in table.output
    assert "1h 0m" in table.output and "1d 1h" in table.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "2026-03-05", "--until", "2026-03-01"], "--since is after --until"),
        (["--since", "yesterday"], "malformed time"),
        (["--as-of", "2026-03-01", "--as-of-position", "0:1"], "choose one of"),
        (["--as-of-position", "0:x"], "malformed log position"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(ledger_urls, args, message):
    result = CliRunner().invoke(main, [*ledger_urls, "metrics", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
