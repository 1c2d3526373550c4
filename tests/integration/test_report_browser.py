"""The report in a real browser: Debian's Chromium, headless, driven over the
DevTools protocol (tests/cdp.py). It must render with no console error and no
network request, and show the inventory, the maker-checker tables and the
metrics the ledger holds. scripts/browser.sh installs the browser; with
LEDGER_REQUIRE_SERVICES=1 (CI) a missing browser is a failure, not a skip."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from report_world import play, play_controls, raw_controls

from cdp import Browser, find_browser
from ledger.cli import main
from ledger.config import open_log
from projections import db, metrics, queries, report

# As tests/conftest.py decides for Kafka and PostgreSQL (not imported: several
# conftest modules share that name).
REQUIRED = os.environ.get("LEDGER_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true"

INVENTORY = """[...document.querySelectorAll('#inventory-table tbody tr[data-model]')].map(tr => {
  const td = tr.querySelectorAll('td');
  return [td[0].textContent, Number(td[1].textContent), td[2].textContent.trim(), td[3].textContent];
})"""

MAKER_CHECKER = """[...document.querySelectorAll('table.maker-checker')].map(t => ({
  model: t.dataset.model, version: Number(t.dataset.version),
  trainer: t.querySelector('.trainer').textContent,
  approver: t.querySelector('.approver').textContent,
  deployers: t.querySelector('.deployers').textContent,
  verdict: t.querySelector('.four-eyes').textContent.trim(),
}))"""

METRICS = """[...document.querySelectorAll('#metrics-table tbody tr')].map(tr => [
  tr.dataset.metric, tr.dataset.environment, Number(tr.querySelectorAll('td')[2].textContent),
  tr.dataset.medianSeconds, tr.dataset.p90Seconds,
])"""


@pytest.fixture(scope="module")
def browser_path():
    found = find_browser()
    if found is None:
        if REQUIRED:
            pytest.fail("chromium is required (LEDGER_REQUIRE_SERVICES=1/CI): run scripts/browser.sh")
        pytest.skip("chromium unavailable: run scripts/browser.sh")
    return found


@pytest.fixture
def written(tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    db_url = f"sqlite:///{tmp_path / 'views.db'}"
    with open_log(log_url) as log:
        play(log)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    engine = db.open_db(db_url)
    yield out, engine
    engine.dispose()


def _number(value):
    return "" if value is None else format(value, "g") if isinstance(value, float) else str(value)


def test_report_renders_offline_and_shows_what_the_ledger_holds(browser_path, written, tmp_path):
    out, engine = written
    with Browser(browser_path) as browser:
        browser.open(out.as_uri())
        assert browser.console_errors() == []
        assert browser.requests() == [out.as_uri()]
        assert browser.evaluate("typeof window.__pwned") == "undefined"

        shown_inventory = browser.evaluate(INVENTORY)
        expected = [
            [m["model"], v["version"], report.version_category(v["status"]), v["status"]]
            for m in queries.list_models(engine)
            for v in queries.model_versions(engine, m["model"])
        ]
        assert shown_inventory == expected
        assert [m[0] for m in expected].count("hostile") == 1
        cards = browser.evaluate(
            "['in-use','in-development','retired'].map(c => Number(document.querySelector('#count-' + c + ' b').textContent))"
        )
        assert cards == [2, 1, 0]

        shown = {(t["model"], t["version"]): t for t in browser.evaluate(MAKER_CHECKER)}
        assert len(shown) == len(expected)
        for model, version, _category, _status in expected:
            detail = queries.version_detail(engine, model, version)
            row = shown[(model, version)]
            assert row["trainer"] == detail["trained_by"]
            assert row["approver"] == (detail["approved_by"] or "")
            assert row["deployers"] == ", ".join(sorted({d["deployed_by"] for d in detail["deployments"]}))
        assert shown[("fraud", 1)]["verdict"].startswith("SAME PERSON")
        assert shown[("churn", 1)]["verdict"] == "distinct"

        answer = metrics.compute(metrics.load_facts(engine))
        assert browser.evaluate(METRICS) == [
            [s["metric"], s["environment"] or "", s["count"], _number(s["median_seconds"]), _number(s["p90_seconds"])]
            for s in answer.summary
        ]
        assert browser.evaluate("document.getElementById('checkpoint-none') !== null")
        assert browser.evaluate("document.querySelectorAll('svg.lineage g.node').length") > 10

        pdf = tmp_path / "report.pdf"
        browser.print_pdf(pdf)
        assert pdf.read_bytes().startswith(b"%PDF")


def test_a_right_to_left_override_in_a_stored_value_is_shown_escaped(browser_path, tmp_path):
    # "file:///a\u202etxt.exe" displays as "file:///aexe.txt" if the override reaches
    # the page: what the browser renders must name it, as `ledger show` prints it.
    log_url, db_url = f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'views.db'}"
    with open_log(log_url) as log:
        play_controls(log)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Browser(browser_path) as browser:
        browser.open(out.as_uri())
        assert browser.console_errors() == []
        page = browser.evaluate("document.body.innerText")
        assert raw_controls(page.replace("\t", "")) == []
        assert "file:///a\\u202etxt.exe" in page
        assert "ok\\x1b[2J\\x0aFAKE: approved by carol" in page
