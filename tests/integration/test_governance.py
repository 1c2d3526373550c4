"""Governance rules end to end through `ledger emit`, on the embedded log: one
test per rule class of issue 9, each checking the exit code, the one-line message
and that a refused event leaves the log byte for byte unchanged."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ledger.cli import main

SNAPSHOT = {
    "model": "pump",
    "dataset": "sensors",
    "snapshot_id": "s1",
    "content_hash": "sha256:abc",
    "row_count": 500,
    "contract": {"columns": [{"name": "temp", "unit": "K"}, {"name": "failure", "dtype": "int"}], "target": "failure"},
}
TRAIN = {
    "model": "pump",
    "version": 1,
    "snapshot_ids": ["s1"],
    "code_ref": "git:abc123",
    "artifact_uri": "file:///artifacts/pump/1",
    "artifact_hash": "sha256:def",
}
PASSED = {"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": 0.93}, "thresholds": {"roc_auc": 0.8}, "passed": True}
FAILED = {**PASSED, "metrics": {"roc_auc": 0.6}, "passed": False}
APPROVE = {"model": "pump", "version": 1, "reason": "good enough"}
DEPLOY = {"model": "pump", "version": 1, "environment": "production"}


@pytest.fixture
def log(tmp_path):
    return tmp_path / "log.db"


def emit(log, kind, actor, fields):
    return CliRunner().invoke(
        main, ["--log", f"sqlite:///{log}", "emit", kind, "--actor", actor, "--json", "-", "--brief"], input=json.dumps(fields)
    )


def accepted(log, *steps):
    for kind, actor, fields in steps:
        result = emit(log, kind, actor, fields)
        assert result.exit_code == 0, result.output


def refused(log, kind, actor, fields, code, words):
    before = log.read_bytes()
    result = emit(log, kind, actor, fields)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert log.read_bytes() == before
    return lines[0]


TRAINED = [("snapshot", "etl", SNAPSHOT), ("train", "alice", TRAIN), ("evaluate", "ci", PASSED)]


@pytest.mark.parametrize("approver", ["Alice", "ALICE", "\uff41lice", "\u0430lice"])
def test_the_trainer_under_another_spelling_cannot_approve(log, approver):
    accepted(log, *TRAINED)
    code = 2 if approver == "\u0430lice" else 1  # mixed scripts: refused as a name first
    words = "actor-identity" if code == 2 else "four-eyes"
    refused(log, "approve", approver, APPROVE, code, words)
    accepted(log, ("approve", "bob", APPROVE))


@pytest.mark.parametrize(
    "actor", ["bob\x1b[2K\rcarol", "bob\u202e", "b\u200bob", "   ", "bob\nbob"]
)
def test_names_that_hide_or_fake_what_a_terminal_shows_are_refused(log, actor):
    accepted(log, *TRAINED)
    line = refused(log, "approve", actor, APPROVE, 2, "")
    assert "\x1b" not in line and "\u202e" not in line and "\u200b" not in line


def query(log, tmp_path, *args):
    return CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "--db", f"sqlite:///{tmp_path / 'views.db'}", *args])


def test_views_keep_the_declared_name_and_its_canonical_form(log, tmp_path):
    accepted(log, ("snapshot", "etl", SNAPSHOT), ("train", "Alice", TRAIN), ("evaluate", "ci", PASSED))
    result = query(log, tmp_path, "audit", "--actor", "ALICE", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["event_type"], r["actor"], r["actor_canonical"]) for r in rows] == [("ModelTrained", "Alice", "alice")]
