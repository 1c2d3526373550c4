"""Every command that takes a model, a version, a time, a log position or an
environment, given bad values of each: one line on stderr, exit 2, no
traceback, and the log unchanged."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.append import Appender
from ledger.cli import main
from ledger.config import open_log

HUGE = "9" * 40

BAD_MODELS = ["", "   ", "churn\x00"]
BAD_TARGETS = ["churn@", "@1", "churn@³", "churn@٣", "churn@+1", "churn@-1", "churn@ 1", "churn@1 ", "churn@0", f"churn@{HUGE}", "churn@1.0", "churn\x00@1"]
BAD_TIMES = [
    "", " ", "yesterday", "2026-13-01", "2026-02-30", "２０２６-03-03", "2026-03-03T25:00", "+2026-03-03", "99999-01-01",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "2026-03-03\x00",
]
BAD_POSITIONS = ["", "0", "0:", ":5", "0:³", "0:٣", "+0:1", "0:+1", "-1:0", "0:-1", "0:1:2", f"0:{HUGE}", "2147483648:0", "0:1,,1:2", "0:1,0:2"]
BAD_ENVIRONMENTS = ["", " production", "prod uction", "-prod", "a" * 65, "prod\x00", "prodüction"]


def _model_commands(tmp):
    return {
        "show": lambda v: ["show", v, "--no-refresh"],
        "verify --model": lambda v: ["verify", "--model", v],
        "export --model": lambda v: ["export", "--out", str(tmp / "e.avro"), "--model", v],
        "audit --model": lambda v: ["audit", "--model", v, "--no-refresh"],
        "notifications --model": lambda v: ["notifications", "--model", v],
        "data snapshot": lambda v: ["data", "snapshot", v, "--dataset", "d", "--contract", str(tmp / "c.json"), "--data", str(tmp / "d.csv"), "--actor", "a"],
        "train": lambda v: ["train", v, "--snapshot", "s1", "--actor", "alice"],
    }


def _target_commands(tmp):
    return {
        "show": lambda v: ["show", v, "--no-refresh"],
        "lineage": lambda v: ["lineage", v, "--no-refresh"],
        "drift check": lambda v: ["drift", "check", v, "--data", str(tmp / "d.csv")],
    }


def _cut_commands(tmp, option):
    return {
        "models": lambda v: ["models", option, v, "--no-refresh"],
        "show": lambda v: ["show", "churn", option, v, "--no-refresh"],
        "lineage": lambda v: ["lineage", "churn@1", option, v, "--no-refresh"],
        "project": lambda v: ["project", option, v],
        "replay": lambda v: ["replay", "--db", f"sqlite:///{tmp / 'replay.db'}", option, v],
    }


def _window_commands(tmp):
    return {
        f"{command} {option}": (lambda v, command=command, option=option: [*head, option, v])
        for command, head in (("export", ["export", "--out", str(tmp / "e.avro")]), ("audit", ["audit", "--no-refresh"]))
        for option in ("--since", "--until")
    }


def _environment_commands(tmp):
    return {"drift check --environment": lambda v: ["drift", "check", "churn@1", "--data", str(tmp / "d.csv"), "--environment", v]}


KINDS = {
    "model": (_model_commands, BAD_MODELS),
    "target": (_target_commands, BAD_TARGETS),
    "as-of": (lambda tmp: _cut_commands(tmp, "--as-of"), BAD_TIMES),
    "as-of-position": (lambda tmp: _cut_commands(tmp, "--as-of-position"), BAD_POSITIONS),
    "since/until": (_window_commands, BAD_TIMES),
    "environment": (_environment_commands, BAD_ENVIRONMENTS),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parsers")
    log_url = f"sqlite:///{tmp / 'log.db'}"
    with open_log(log_url) as log:
        Appender(log).append([samples.snapshot("churn", "s1"), samples.trained("churn", 1, snapshots=("s1",))])
    (tmp / "c.json").write_text("{}", encoding="utf-8")
    (tmp / "d.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return tmp, log_url


def _records(log_url: str) -> list[bytes]:
    with open_log(log_url) as log:
        return [r.data for r in log.read()]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_command_refuses_bad_values_in_one_line(world, kind):
    tmp, log_url = world
    commands, bad_values = KINDS[kind]
    before = _records(log_url)
    failures = []
    for name, args_for in commands(tmp).items():
        for value in bad_values:
            args = ["--log", log_url, "--db", f"sqlite:///{tmp / 'views.db'}", *args_for(value)]
            result = CliRunner().invoke(main, args)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            if (
                result.exit_code != 2
                or not isinstance(result.exception, SystemExit)
                or len(lines) != 1
                or not lines[0].startswith("error: ")
                or "Traceback" in result.output
            ):
                failures.append(f"{name} {value!r}: exit {result.exit_code}, {result.exception!r}, stderr {result.stderr!r}")
    assert not failures, "\n".join(failures)
    assert _records(log_url) == before


def test_good_values_pass_the_same_commands(world):
    # The table above must fail on parsing, not on anything else: the same
    # commands with good values get past it.
    tmp, log_url = world
    db = f"sqlite:///{tmp / 'good.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["--log", log_url, "--db", db, "project", "--as-of", "2999-01-01"]).exit_code == 0
    for args in (
        ["show", "churn@1", "--no-refresh"],
        ["lineage", "churn@1", "--no-refresh", "--as-of-position", "0:5"],
        ["models", "--no-refresh", "--as-of", "2026-03-03T10:00:00+01:00"],
        ["audit", "--no-refresh", "--model", "churn", "--since", "2000-01-01", "--until", "2999-12-31"],
        ["verify", "--model", "churn"],
        ["export", "--out", str(tmp / "good.avro"), "--model", "churn", "--since", "2000-01-01"],
    ):
        result = runner.invoke(main, ["--log", log_url, "--db", db, *args])
        assert result.exit_code == 0, (args, result.output)
