"""`ledger report`: what the HTML holds, that it loads nothing, and that hostile
strings recorded in the ledger stay text. (The browser test is test_report_browser.py.)"""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from report_world import HOSTILE, HOSTILE_ACTOR, play, play_controls, raw_controls
from tampering import build_ledger, middle_forged

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


def test_control_and_bidi_characters_are_shown_escaped_as_the_cli_prints_them(tmp_path):
    # Autoescaping makes markup text; it leaves a right-to-left override (the artifact
    # "a\u202etxt.exe" would display as "aexe.txt"), ESC and BEL in place.
    log_url, db_url = f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'views.db'}"
    with open_log(log_url) as log:
        play_controls(log)
    code, output, html = write(["--log", log_url, "--db", db_url], tmp_path)
    assert code == 0, output
    assert raw_controls(html.replace("\t", "")) == []
    parsed = Tags()
    parsed.feed(html)
    text = "".join(parsed.text)
    shown = CliRunner().invoke(main, ["--log", log_url, "--db", db_url, "show", "ctl@1"])
    assert shown.exit_code == 0, shown.output
    for escaped in (
        "file:///a\\u202etxt.exe", "git:\\x1b]0;pwned\\x07", "\\x1b]0;OWNED\\x07\\x1b[2J=1", "m\\x1b[5m", "auc\\u202e",
        "ok\\x1b[2J\\x0aFAKE: approved by carol",
    ):
        assert escaped in text, escaped
        assert escaped.split("=")[0] in shown.stdout, escaped  # the same spelling as `ledger show`
    timeline = html[html.index('<table class="timeline">'):]
    assert "ok\\x1b[2J\\x0aFAKE: approved by carol" in timeline[: timeline.index("</table>")]


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


def checkpoint_items(html: str) -> list[str]:
    """The text of each entry of the signed-checkpoints list."""
    section = html[html.index('id="signed-checkpoint"'):]
    items = []
    for chunk in section.split('<li class="checkpoint"')[1:]:
        parsed = Tags()
        parsed.feed("<li" + chunk[: chunk.index("</li>")])
        items.append(" ".join(" ".join(parsed.text).split()))
    return items


@pytest.fixture
def signed(tmp_path):
    """A log signed by its key and co-signed by a witness; the keys' ``name+id``."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    build_ledger(url)
    cli = CliRunner()
    names = []
    for prefix, name, flags in (("log", "ledger.test/models", []), ("w", "witness.test", ["--witness"])):
        made = cli.invoke(main, ["keys", "generate", "--name", name, "--out", str(tmp_path / prefix), *flags])
        assert made.exit_code == 0, made.output
        names.append("+".join((tmp_path / f"{prefix}.pub").read_text().split("+")[:2]))
    base = ["--log", url]
    assert cli.invoke(main, [*base, "checkpoint", "--key", str(tmp_path / "log.key")]).exit_code == 0
    cosigned = cli.invoke(
        main,
        [*base, "witness", "--key", str(tmp_path / "w.key"), "--state", str(tmp_path / "w.json"), "--log-key", str(tmp_path / "log.pub")],
    )
    assert cosigned.exit_code == 0, cosigned.output
    return [*base, "--db", f"sqlite:///{tmp_path / 'views.db'}"], tmp_path / "log.db", names


def test_the_signed_checkpoint_is_shown_and_the_log_still_extends_it(signed, tmp_path):
    urls, _, (log_key, witness_key) = signed
    code, output, html = write(urls, tmp_path)
    assert code == 0, output
    assert 'id="checkpoint-none"' not in html
    (item,) = checkpoint_items(html)
    assert "Origin ledger.test/models/0 Tree size 15 " in item
    assert f"Signatures {log_key}, {witness_key} (co-signed 20" in item
    assert "Log extends it yes" in item
    assert "ledger.test/models/0 15 " in item  # the note itself, as signed
    assert "INTACT" in html


def test_a_log_rewritten_after_its_checkpoint_is_shown_as_not_extending_it(signed, tmp_path):
    from ledger.checkpoint_store import SqliteCheckpoints
    from test_tamper_matrix import read_sqlite, rewrite_sqlite

    urls, path, _ = signed
    kept = SqliteCheckpoints(path).all()
    original = read_sqlite(path)
    # A covered event forged and its stream relinked: the chains alone find nothing.
    rewrite_sqlite(path, middle_forged(original), {r.hash: r for r in original})
    for checkpoint in kept:  # the forger left the stored checkpoints alone
        SqliteCheckpoints(path).add(checkpoint)
    assert CliRunner().invoke(main, [urls[0], urls[1], "verify"]).exit_code == 0

    code, output, html = write(urls, tmp_path)
    assert code == 0, output
    (item,) = checkpoint_items(html)
    assert "Log extends it NO" in item
    assert "is not an append-only extension of checkpoint ledger.test/models/0@15" in item
    assert "PROBLEMS FOUND" in html and "INTACT" not in html


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


def recorded(tmp_path, steps) -> list[str]:
    """A log of ``steps`` (draft, recording principal or None), appended the way the
    service records them; the CLI's --log/--db arguments for it."""
    from ledger.append import Appender

    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        appender = Appender(log)
        for draft, runner in steps:
            appender.append([draft.model_copy(update={"recorded_by": runner})])
    return ["--log", log_url, "--db", f"sqlite:///{tmp_path / 'views.db'}"]


def test_four_eyes_counts_who_recorded_an_event_on_anothers_behalf(tmp_path):
    # Through the service, a pipeline runner with act-as records events naming other
    # people (event schema v4's recorded_by). The rules keep it from approving what it
    # recorded the training of, but nothing stops it deploying: the report must still
    # see that one principal both trained (as alice) and deployed (as dave).
    from ledger import samples

    urls = recorded(tmp_path, [
        (samples.snapshot("churn"), None),
        (samples.trained("churn", actor="alice"), "runner"),
        (samples.evaluated("churn"), None),
        (samples.approved("churn", actor="bob"), None),
        (samples.deployed("churn", actor="dave"), "runner"),
    ])
    code, output, html = write(urls, tmp_path)
    assert code == 0, output
    assert "SAME PERSON: trainer and deployer: runner" in html
    assert "alice (recorded by runner)" in html and "dave (recorded by runner)" in html
    shown = CliRunner().invoke(main, [*urls, "show", "churn@1"])
    assert shown.exit_code == 0, shown.output
    assert "production: since" in shown.stdout and "by dave (recorded by runner)" in shown.stdout


def maker_checker(html: str, model: str, version: int) -> str:
    """The text of one version's maker-checker table."""
    start = html.index(f'<table class="maker-checker" data-model="{model}" data-version="{version}">')
    parsed = Tags()
    parsed.feed(html[start: html.index("</table>", start)])
    return " ".join(" ".join(parsed.text).split())


def test_four_eyes_counts_who_recorded_an_evaluation(tmp_path):
    # A runner that records the evaluation holds the evaluator's role as well as the
    # actor it names (ci): v1, it also recorded alice's training; v2, carol's approval.
    from ledger import samples

    urls = recorded(tmp_path, [
        (samples.snapshot("churn"), None),
        (samples.trained("churn", 1, actor="alice"), "runner"),
        (samples.evaluated("churn", 1), "runner"),
        (samples.approved("churn", 1, actor="bob"), None),
        (samples.trained("churn", 2, actor="alice"), None),
        (samples.evaluated("churn", 2), "runner"),
        (samples.approved("churn", 2, actor="carol"), "runner"),
    ])
    code, output, html = write(urls, tmp_path)
    assert code == 0, output
    v1, v2 = maker_checker(html, "churn", 1), maker_checker(html, "churn", 2)
    assert "ci (recorded by runner)" in v1 and "trainer and evaluator: runner" in v1 and "distinct" not in v1
    assert "ci (recorded by runner)" in v2 and "evaluator and approver: runner" in v2 and "distinct" not in v2
    shown = CliRunner().invoke(main, [*urls, "show", "churn@2"])
    assert shown.exit_code == 0, shown.output
    assert "by ci (recorded by runner) on s1: passed" in shown.stdout
    detail = CliRunner().invoke(main, [*urls, "show", "churn@2", "--json"])
    assert [e["recorded_by"] for e in json.loads(detail.stdout)["evaluations"]] == ["runner"]


class Headings(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h3: list[str] = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "h3":
            self._inside = True
            self.h3.append("")

    def handle_endtag(self, tag):
        if tag == "h3":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.h3[-1] += data


def test_each_version_heading_names_its_state_once(tmp_path):
    from ledger import samples
    from ledger.append import Appender

    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        appender = Appender(log)
        for draft in (
            samples.snapshot("churn"), samples.trained("churn", 1), samples.retired("churn", 1),
            samples.trained("churn", 2), samples.evaluated("churn", 2), samples.approved("churn", 2), samples.deployed("churn", 2),
        ):
            appender.append([draft])
    code, output, html = write(["--log", log_url, "--db", f"sqlite:///{tmp_path / 'views.db'}"], tmp_path)
    assert code == 0, output
    headings = Headings()
    headings.feed(html)
    versions = [" ".join(h.split()) for h in headings.h3 if " version " in h]
    assert versions == ["churn version 1 — retired", "churn version 2 — deployed in use"]
