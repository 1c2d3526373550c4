"""`ledger report`: what the HTML holds, that it loads nothing, and that hostile
strings recorded in the ledger stay text. (The browser test is test_report_browser.py.)"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from report_world import HOSTILE, HOSTILE_ACTOR, play

from ledger.cli import main
from ledger.config import open_log

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "nav", "ul", "li", "a", "section", "h1", "h2",
    "h3", "h4", "p", "b", "code", "span", "div", "table", "thead", "tbody", "tr", "th", "td", "pre",
    "svg", "g", "rect", "text", "path", "line", "defs", "marker",
}


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def urls(tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        play(log)
    return ["--log", log_url, "--db", f"sqlite:///{tmp_path / 'views.db'}"]


def write(urls, tmp_path, *args) -> tuple[int, str, str]:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, [*urls, "report", "--out", str(out), *args])
    return result.exit_code, result.output, out.read_text(encoding="utf-8") if out.exists() else ""


def test_hostile_strings_stay_text(urls, tmp_path):
    code, output, html = write(urls, tmp_path)
    assert code == 0, output
    parsed = Tags()
    parsed.feed(html)
    assert parsed.tags <= ALLOWED_TAGS, parsed.tags - ALLOWED_TAGS
    assert not [name for name, _ in parsed.attrs if name.startswith("on")]
    assert not [v for name, v in parsed.attrs if name in ("src", "href") and v and not v.startswith("#")]
    text = "".join(parsed.text)
    assert HOSTILE[:200] in text and HOSTILE_ACTOR in text  # shown, as text
    assert "<script" not in html.lower()


def test_self_contained_and_what_it_says(urls, tmp_path):
    code, output, html = write(urls, tmp_path)
    assert code == 0, output
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    style = html[html.index("<style>"): html.index("</style>")]
    assert "@import" not in style and "url(" not in style
    assert "INTACT" in html
    assert 'id="checkpoint-none"' in html
    assert "SAME PERSON: trainer and deployer: dave" in html  # fraud v1: dave trained, "Dave" deployed
    assert "OPEN: still in production" in html  # fraud's alert
    assert "replaced in production at 2026-03-04T09:00:00Z (1d 0h after the alert)" in html
    assert "retrained as v2" in html
    assert "@media print" in html


def test_as_of_and_model_filter(urls, tmp_path):
    code, output, html = write(urls, tmp_path, "--as-of", "2026-03-02T12:00:00Z", "--model", "churn")
    assert code == 0, output
    assert 'data-model="fraud"' not in html
    assert "as of 2026-03-02T12:00:00.000000Z" in html
    assert 'data-model="churn" data-version="2"' not in html  # not yet trained then
    assert "No drift alert." in html


def test_unknown_model_is_exit_4_and_no_file(urls, tmp_path):
    code, output, html = write(urls, tmp_path, "--model", "nope")
    assert code == 4 and "unknown model" in output and html == ""
    assert "Traceback" not in output


def test_unwritable_output_is_exit_2(urls, tmp_path):
    result = CliRunner().invoke(main, [*urls, "report", "--out", str(tmp_path / "no" / "such" / "dir.html")])
    assert result.exit_code == 2 and "cannot write" in result.output


@pytest.mark.postgres
def test_postgresql_views_give_the_same_metrics_and_report(urls, tmp_path, fresh_postgres):
    """The same log projected into PostgreSQL: the same metrics, the same report
    (but for the instant it was generated)."""
    import json
    import re

    def metrics_json(db_args):
        result = CliRunner().invoke(main, [*db_args, "metrics", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    pg = [urls[0], urls[1], "--db", fresh_postgres]
    assert metrics_json(pg) == metrics_json(urls)
    stamp = re.compile(r"(generated |not only this cut\) at )20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    pages = []
    for args, name in ((urls, "sqlite.html"), (pg, "pg.html")):
        out = tmp_path / name
        result = CliRunner().invoke(main, [*args, "report", "--out", str(out)])
        assert result.exit_code == 0, result.output
        pages.append(stamp.sub(r"\1T", out.read_text(encoding="utf-8")))
    assert pages[0] == pages[1]
