"""`ledger emit` and `ledger verify` as a person or a service uses them, on the
embedded log and on a real Kafka broker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.config import open_log

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
    "hyperparameters": {"max_depth": 3, "criterion": "gini"},
    "artifact_uri": "file:///artifacts/pump/1",
    "artifact_hash": "sha256:def",
}
EVALUATE = {"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": 0.93}, "thresholds": {"roc_auc": 0.8}, "passed": True}
APPROVE = {"model": "pump", "version": 1, "reason": "good enough"}
DEPLOY = {"model": "pump", "version": 1, "environment": "production"}


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request, tmp_path):
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("kafka_log_url")


def emit(log_url, kind, actor, fields, *extra):
    result = CliRunner().invoke(
        main, ["--log", log_url, "emit", kind, "--actor", actor, "--json", "-", *extra], input=json.dumps(fields)
    )
    return result


def raw(log_url) -> list[bytes]:
    with open_log(log_url) as log:
        return [r.data for r in log.read()]


def test_full_lifecycle_is_accepted_and_verifies(log_url):
    answers = []
    for kind, actor, fields in [
        ("snapshot", "etl", SNAPSHOT),
        ("train", "alice", TRAIN),
        ("evaluate", "ci", EVALUATE),
        ("approve", "bob", APPROVE),
        ("deploy", "deployer", DEPLOY),
    ]:
        result = emit(log_url, kind, actor, fields)
        assert result.exit_code == 0, result.output
        answers.append(json.loads(result.stdout))
    assert [a["sequence"] for a in answers] == [1, 2, 3, 4, 5]
    assert [a["event_type"] for a in answers] == [
        "DataSnapshotted",
        "ModelTrained",
        "ModelEvaluated",
        "ModelApproved",
        "ModelDeployed",
    ]
    assert answers[0]["prev_hash"] == "0" * 64
    for before, after in zip(answers, answers[1:]):
        assert after["prev_hash"] == before["hash"]
    assert answers[1]["event"]["hyperparameters"] == {"max_depth": "3", "criterion": "gini"}
    assert len(raw(log_url)) == 5

    verified = CliRunner().invoke(main, ["--log", log_url, "verify"])
    assert verified.exit_code == 0, verified.output
    assert "1 stream(s), 5 event(s): intact" in verified.output


def test_deploy_of_an_unapproved_version_exits_1_and_writes_nothing(log_url):
    for kind, actor, fields in [("snapshot", "etl", SNAPSHOT), ("train", "alice", TRAIN), ("evaluate", "ci", EVALUATE)]:
        assert emit(log_url, kind, actor, fields).exit_code == 0
    before = raw(log_url)
    result = emit(log_url, "deploy", "deployer", DEPLOY)
    assert result.exit_code == 1
    assert "deploy-only-approved" in result.stderr
    assert "Traceback" not in result.output
    assert raw(log_url) == before


def test_approval_by_the_trainer_exits_1(log_url):
    for kind, actor, fields in [("snapshot", "etl", SNAPSHOT), ("train", "alice", TRAIN), ("evaluate", "ci", EVALUATE)]:
        assert emit(log_url, kind, actor, fields).exit_code == 0
    before = raw(log_url)
    result = emit(log_url, "approve", "alice", APPROVE)
    assert result.exit_code == 1
    assert "four-eyes" in result.stderr and "alice" in result.stderr
    assert raw(log_url) == before


BAD_INPUT = [
    ("malformed-json", "deploy", '{"model": "pump", "version": 1', "malformed JSON"),
    ("not-an-object", "deploy", "[1, 2]", "JSON must be an object"),
    ("unknown-type", "promote", json.dumps(DEPLOY), "unknown event type 'promote'"),
    ("missing-field", "deploy", json.dumps({"model": "pump", "version": 1}), "environment"),
    ("wrong-type", "deploy", json.dumps({**DEPLOY, "version": "one"}), "version"),
    ("unknown-field", "deploy", json.dumps({**DEPLOY, "colour": "red"}), "colour"),
    ("ledger-field", "deploy", json.dumps({**DEPLOY, "sequence": 9}), "set by the ledger"),
    ("hostile-model", "deploy", json.dumps({**DEPLOY, "model": "x'; DROP TABLE events; --"}), "model"),
    ("nul-in-text", "approve", json.dumps({"model": "pump", "version": 1, "reason": "fine\u0000"}), "reason holds a NUL"),
    ("naive-time", "deploy", json.dumps({**DEPLOY, "occurred_at": "2026-03-03T10:00:00"}), "time zone"),
    ("not-utf8", "deploy", b"\x89PNG\r\n\x1a\n\x00\x00", "UTF-8"),
    ("nan-metric", "evaluate", json.dumps({**EVALUATE, "metrics": {"roc_auc": float("nan")}}), "NaN"),
    ("infinite-value", "evaluate", json.dumps({**EVALUATE, "thresholds": {"roc_auc": float("-inf")}}), "-Infinity"),
]


@pytest.mark.parametrize(("kind", "payload", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(tmp_path, kind, payload, message):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    assert emit(url, "snapshot", "etl", SNAPSHOT).exit_code == 0
    before = raw(url)
    result = CliRunner().invoke(main, ["--log", url, "emit", kind, "--actor", "x", "--json", "-"], input=payload)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert raw(url) == before


def test_emitting_the_same_json_again_is_answered_as_a_duplicate(log_url):
    # What a CI job does after a timeout (exit 3, "retrying with the same event ids
    # is safe"): the file has an event id but no occurred_at.
    emit(log_url, "snapshot", "etl", SNAPSHOT)
    fields = {**TRAIN, "event_id": "5a1c3c52-6f0e-4a51-9d3b-2f4a7c9e8b10"}
    first = emit(log_url, "train", "alice", fields)
    again = emit(log_url, "train", "alice", fields)
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert json.loads(again.stdout)["duplicate"] is True
    assert json.loads(again.stdout)["hash"] == json.loads(first.stdout)["hash"]
    assert len(raw(log_url)) == 2
    # Another action under that id is still refused.
    other = emit(log_url, "train", "alice", {**fields, "code_ref": "git:other"})
    assert other.exit_code == 1 and "event-id-unique" in other.stderr


def test_a_json_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    # Windows editors and PowerShell's Out-File start UTF-8 files with a BOM.
    url = f"sqlite:///{tmp_path / 'log.db'}"
    source = tmp_path / "snapshot.json"
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps({**SNAPSHOT, "dataset": "capteurs-été"}).encode())
    result = CliRunner().invoke(main, ["--log", url, "emit", "snapshot", "--actor", "etl", "--json", str(source)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["event"]["dataset"] == "capteurs-été"


def test_unreachable_log_is_exit_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = emit(f"sqlite:///{blocker / 'log.db'}", "snapshot", "etl", SNAPSHOT)
    assert result.exit_code == 3
    assert "cannot open the embedded log" in result.stderr
    # The outcome of a failed append may be unknown: the user gets the event id that
    # makes a retry safe (answered as a duplicate if the first try got through).
    assert '"event_id": "' in result.stderr and len(result.stderr.splitlines()) == 1


def _commands(group, path=()):
    import click

    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_command_has_help_with_an_example():
    paths = list(_commands(main))
    assert ("emit",) in paths and ("drift", "check") in paths
    for path in paths:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, f"`ledger {' '.join(path)} --help` has no example"


_READ = {"x86_64": 0, "aarch64": 63}  # the read(2) system call's number


def blocked_reading_stdin(process, within: float = 60.0) -> None:
    """Wait until ``process`` sits in read(0, ...): started, imported, and waiting
    for its input (a fixed sleep is too short on a loaded machine)."""
    import platform
    import time

    number = _READ.get(platform.machine())
    if number is None:
        pytest.skip(f"no read(2) number known for {platform.machine()}")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            fields = open(f"/proc/{process.pid}/syscall").read().split()
        except OSError:
            fields = []
        if len(fields) > 1 and fields[0] == str(number) and int(fields[1], 16) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the process did not block reading stdin within {within} s")


def test_ctrl_c_exits_130_with_one_line_and_writes_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'log.db'}"
    command = [sys.executable, "-c", "from ledger.cli import run; run()"]
    process = subprocess.Popen(
        [*command, "--log", url, "emit", "snapshot", "--actor", "etl", "--json", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    blocked_reading_stdin(process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert raw(url) == []


def test_ctrl_c_while_the_command_line_is_still_loading_exits_130_with_one_line(tmp_path):
    import signal
    import subprocess
    import sys
    import threading

    url = f"sqlite:///{tmp_path / 'log.db'}"
    # -X importtime writes a line to stderr as each import ends: once click is in,
    # the command line is still loading (the command modules, then the command's
    # libraries), long before it reads its input: that is when the Ctrl-C lands.
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-c", "from ledger.cli import run; run()",
         "--log", url, "emit", "snapshot", "--actor", "etl", "--json", "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    guard = threading.Timer(60, process.kill)  # never hang on a line that does not come
    guard.start()
    try:
        for line in process.stderr:
            if line.rsplit("|", 1)[-1].strip() == "click":
                process.send_signal(signal.SIGINT)
                break
    finally:
        guard.cancel()
    _, rest = process.communicate(timeout=60)
    lines = [line for line in rest.splitlines() if not line.startswith("import time:")]
    assert process.returncode == 130, rest
    assert [line for line in lines if line] == ["interrupted"]
    assert raw(url) == []
