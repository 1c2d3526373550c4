"""Every command, a table of bad values: one line on stderr, the documented exit
code (1 rejected, 2 bad input, 3 log/database unusable, 4 unknown), no traceback,
and the log byte for byte as it was."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.cli import main
from ledger.client import Ledger

ESC = "\x1b[2J\x1b[31mroot"
RLO = "bob\u202eecila"
HUGE = "9" * 40
DEPLOY = {"model": "pump", "version": 1, "environment": "production"}

GOOD_HASH = "a" * 64
HEADS_FILES = {
    "empty": {"heads": {}},
    "object": {},
    "list": [],
    "not-object": {"heads": []},
    "short-hash": {"heads": {"pump": {"sequence": 5, "hash": "zz"}}},
    "upper-hash": {"heads": {"pump": {"sequence": 5, "hash": "A" * 64}}},
    "hash-number": {"heads": {"pump": {"sequence": 5, "hash": 7}}},
    "huge-sequence": {"heads": {"pump": {"sequence": int(HUGE), "hash": GOOD_HASH}}},
    "zero-sequence": {"heads": {"pump": {"sequence": 0, "hash": GOOD_HASH}}},
    "negative-sequence": {"heads": {"pump": {"sequence": -1, "hash": GOOD_HASH}}},
    "bool-sequence": {"heads": {"pump": {"sequence": True, "hash": GOOD_HASH}}},
    "text-sequence": {"heads": {"pump": {"sequence": "5", "hash": GOOD_HASH}}},
    "float-sequence": {"heads": {"pump": {"sequence": 5.5, "hash": GOOD_HASH}}},
    "head-not-object": {"heads": {"pump": [5, GOOD_HASH]}},
}

# (args, stdin, exit code). "{log}", "{dir}" are filled in per test.
CASES = [
    # emit
    (["emit", "deploy", "--actor", ESC, "--json", "-"], json.dumps(DEPLOY), 2),
    (["emit", "deploy", "--actor", RLO, "--json", "-"], json.dumps(DEPLOY), 2),
    (["emit", "deploy", "--actor", "", "--json", "-"], json.dumps(DEPLOY), 2),
    (["emit", ESC, "--actor", "x", "--json", "-"], json.dumps(DEPLOY), 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], "{", 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], "[" * 100000, 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], '{"model": "pump", "model": "fan"}', 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], json.dumps({**DEPLOY, "model": ESC}), 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], json.dumps({**DEPLOY, "version": HUGE}), 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], '{"model": "pump", "version": 1e999, "environment": "p"}', 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], json.dumps({**DEPLOY, "occurred_at": "9999-12-31T23:59:59-14:00"}), 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], json.dumps({**DEPLOY, "occurred_at": "3000-01-01T00:00:00Z"}), 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], json.dumps({**DEPLOY, "occurred_at": ESC}), 2),
    (["emit", "deploy", "--actor", "x", "--json", "-"], json.dumps({**DEPLOY, "sequence": 1}), 2),
    (["emit", "deploy", "--actor", "x", "--json", "{dir}/missing.json"], "", 2),
    (["emit", "deploy", "--actor", "x", "--json", "-", "--expect-sequence", HUGE], json.dumps(DEPLOY), 2),  # a bad option
    (["emit", "deploy", "--actor", "x", "--json", "-", "--expect-sequence", "-1"], json.dumps(DEPLOY), 2),
    (["emit", "deploy", "--actor", "alice", "--json", "-"], json.dumps({**DEPLOY, "version": 7}), 1),  # version-exists
    (["emit", "retire", "--actor", "x", "--json", "-"], '{"model": "ghost"}', 1),
    (["emit", "evaluate", "--actor", "x", "--json", "-"], json.dumps({"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": 0.1}, "thresholds": {"roc_auc": 0.7}, "passed": "yes"}), 2),
    # queries
    (["models", "--as-of", "0001-01-01T00:00:00+14:00"], None, 2),
    (["models", "--as-of", ESC], None, 2),
    (["models", "--as-of-position", f"0:{HUGE}"], None, 2),
    (["models", "--format", ESC], None, 2),
    (["show", ESC], None, 4),
    (["show", "pump@0"], None, 2),
    (["show", f"pump@{HUGE}"], None, 2),
    (["show", "pump@1", "--as-of", "+12026-01-01"], None, 2),
    (["show", "pump", "--environment", RLO], None, 2),  # not an environment name (ledger.parsing)
    (["models", "--environment", ESC], None, 2),
    (["audit", "--since", "2026-13-01"], None, 2),
    (["audit", "--until", "9999-12-31T23:59:59-14:00"], None, 2),
    (["audit", "--since", "2026-03-02", "--until", "2026-03-01"], None, 2),
    (["audit", "--model", ESC], None, 4),
    (["audit", "--limit", "-1"], None, 2),
    (["audit", "--version", "0"], None, 2),
    (["audit", "--type", RLO], None, 2),
    (["lineage", ESC], None, 2),
    (["lineage", "pump@1", "--depth", "-3"], None, 2),
    (["lineage", "pump@9"], None, 4),
    (["pending", "--model", ESC], None, 4),
    (["schema", ESC], None, 2),
    # auditors
    (["verify", "--model", ESC], None, 4),
    (["verify", "--file", "{dir}/missing.avro"], None, 2),
    (["verify", "--file", "{log}"], None, 2),  # not a ledger evidence file
    (["verify", "--file", "{dir}/notes.txt"], None, 2),
    (["verify", "--heads", "{dir}/missing.json"], None, 2),
    *[(["verify", "--heads", f"{{dir}}/heads-{name}.json"], None, 2) for name in HEADS_FILES],
    (["verify", "--model", "pump", "--heads", "{dir}/heads-other-model.json"], None, 2),  # no head of pump: nothing checked
    (["export", "--out", "{log}"], None, 2),
    (["export", "--out", "{dir}/e.avro", "--since", ESC], None, 2),
    (["export", "--out", "{dir}/e.avro", "--model", ESC], None, 4),
    # views and consumers
    (["project", "--as-of", "garbage"], None, 2),
    (["project", "--batch-size", "0"], None, 2),
    (["replay", "--db", "nosuch://x"], None, 2),
    (["notifications", "--status", ESC], None, 2),
    (["consume", ESC], None, 2),
    (["consume", "notify", "--config", "{dir}/missing.toml"], None, 2),
    (["data", "snapshot", "pump", "--dataset", "d", "--contract", "{dir}/missing.json", "--data", "{dir}/x.csv", "--actor", "a"], None, 2),
    (["drift", "check", "pump@1", "--data", "{dir}/missing.csv"], None, 2),
    (["train", "pump", "--snapshot", "s1", "--actor", "a", "--threshold", "roc_auc=Infinity"], None, 2),
    # the verifiable log: keys, checkpoints, witnesses, receipts
    (["keys", "generate", "--name", ESC, "--out", "{dir}/k1"], None, 2),
    (["keys", "generate", "--name", RLO, "--out", "{dir}/k2"], None, 2),
    (["keys", "generate", "--name", "log\u200b.example", "--out", "{dir}/k3"], None, 2),
    (["keys", "generate", "--name", "a+b", "--out", "{dir}/k4"], None, 2),
    (["keys", "generate", "--name", "ok.example/log", "--out", "{dir}/missing/k"], None, 2),
    (["checkpoint", "--key", "{dir}/missing.key"], None, 2),
    (["checkpoint", "--key", "{log}"], None, 2),
    (["witness", "--key", "{log}", "--state", "{dir}/w.json", "--log-key", ESC], None, 2),
    (["prove", ESC], None, 2),
    (["prove", "00000000-0000-0000-0000-000000000000"], None, 4),
    (["verify", "--receipt", "{dir}/missing.receipt", "--key", ESC], None, 2),
    (["verify", "--checkpoint", "{log}", "--key", "{log}"], None, 2),
    # the service's principals
    (["principals", "add", ESC, "--role", "read", "--file", "{dir}/p.toml"], None, 2),
    (["principals", "add", RLO, "--role", "read", "--file", "{dir}/p.toml"], None, 2),
    (["principals", "add", "bob", "--role", ESC, "--file", "{dir}/p.toml"], None, 2),
    (["principals", "add", "bob", "--role", "deploy:" + RLO, "--file", "{dir}/p.toml"], None, 2),
    (["principals", "list", "--file", "{log}"], None, 2),
    (["serve", "--principals", "{dir}/missing.toml", "--port", "0"], None, 2),
    (["serve", "--principals", "{log}", "--port", "0"], None, 2),
    (["nosuch"], None, 2),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    log = root / "log.db"
    for name, content in HEADS_FILES.items():
        (root / f"heads-{name}.json").write_text(json.dumps(content))
    (root / "heads-other-model.json").write_text(json.dumps({"heads": {"fan": {"sequence": 1, "hash": GOOD_HASH}}}))
    (root / "notes.txt").write_text("not an evidence file\n")
    with Ledger.open(f"sqlite:///{log}") as ledger:
        for draft in samples.lifecycle("pump"):
            ledger.emit(draft)
    runner = CliRunner()
    assert runner.invoke(main, ["--log", f"sqlite:///{log}", "--db", f"sqlite:///{root / 'views.db'}", "project"]).exit_code == 0
    return root, log


@pytest.mark.parametrize(("args", "stdin", "code"), CASES, ids=[f"{i}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_bad_values_are_one_line_a_documented_code_and_no_change(world, args, stdin, code):
    root, log = world
    before = log.read_bytes()
    filled = [a.format(log=log, dir=root) for a in args]
    env = {"LEDGER_DATA_DIR": str(root / "data"), "LEDGER_ARTIFACTS_DIR": str(root / "artifacts")}
    result = CliRunner().invoke(
        main, ["--log", f"sqlite:///{log}", "--db", f"sqlite:///{root / 'views.db'}", *filled], input=stdin, env=env
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, (result.exit_code, result.output)
    if code:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "\x1b" not in result.stderr and "\u202e" not in result.stderr, result.stderr
    assert log.read_bytes() == before
