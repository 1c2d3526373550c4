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


@pytest.mark.parametrize(
    "approver", ["Alice", "ALICE", "\uff41lice", "\u0430lice", "aIice", "\u0430\u04cf\u0456\u0441\u0435", "\u0410\u04c0\u0406\u0421\u0415"]
)
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


def test_a_decision_goes_stale_when_the_version_is_evaluated_again(log):
    accepted(log, *TRAINED, ("approve", "bob", APPROVE), ("evaluate", "ci", FAILED))
    # The trainer's own "passed" with numbers below the thresholds it names.
    refused(log, "evaluate", "alice", {**FAILED, "passed": True}, 1, "evaluation-adds-up")
    accepted(log, ("evaluate", "ci", PASSED))
    refused(log, "deploy", "deployer", DEPLOY, 1, "needs a new approval")
    accepted(log, ("approve", "carol", APPROVE), ("deploy", "deployer", DEPLOY))


@pytest.mark.parametrize("passed", ["yes", 1, "true", None])
def test_passed_is_a_boolean(log, passed):
    accepted(log, *TRAINED[:2])
    refused(log, "evaluate", "ci", {**PASSED, "passed": passed}, 2, "passed")


def test_an_evaluation_whose_verdict_contradicts_its_numbers_is_refused(log):
    accepted(log, *TRAINED[:2])
    refused(log, "evaluate", "ci", {**PASSED, "passed": False}, 1, "every threshold is met")
    refused(log, "evaluate", "ci", {**PASSED, "thresholds": {"f1": 0.5}}, 1, "no such metric")


def test_retiring_a_model_with_no_events_is_refused(log):
    accepted(log, TRAINED[0])
    refused(log, "retire", "owner", {"model": "ghost"}, 1, "retire-known-model")
    accepted(log, ("snapshot", "etl", {**SNAPSHOT, "model": "ghost"}))  # the name is not burnt


def test_references_point_where_they_claim(log):
    accepted(log, *TRAINED, ("approve", "bob", APPROVE), ("deploy", "deployer", DEPLOY))
    deployed_id = json.loads(
        CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "emit", "deploy", "--actor", "d", "--json", "-"], input=json.dumps({**DEPLOY, "environment": "staging"})).stdout
    )["event_id"]
    retrain = {**TRAIN, "version": 2, "parent_version": 1, "trigger": "drift", "artifact_uri": "file:///artifacts/pump/2"}
    refused(log, "train", "retrainer", {**retrain, "trigger_alert_id": deployed_id}, 1, "trigger-alert-of-this-model")
    refused(log, "train", "retrainer", {**retrain, "version": 3, "parent_version": 3}, 1, "parent-version-exists")
    refused(log, "train", "retrainer", {**retrain, "version": 3, "parent_version": 2}, 1, "parent-version-exists")
    bounds = {"columns": [{"name": "temp", "minimum": 400, "maximum": 200}]}
    refused(log, "snapshot", "etl", {**SNAPSHOT, "snapshot_id": "s2", "contract": bounds}, 2, "contract-bounds-ordered")


@pytest.mark.parametrize(
    ("occurred_at", "words"),
    [
        ("2999-01-01T00:00:00Z", "occurred-at-in-range"),
        ("1969-12-31T23:59:59Z", "occurred-at-in-range"),
        ("0001-01-01T00:00:00+14:00", "occurred_at"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", "occurred_at"),  # after 9999 in UTC
        ("2026-03-03T10:00:00+99:00", "occurred_at"),
        ("+12026-03-03T10:00:00Z", "occurred_at"),
    ],
)
def test_times_out_of_range_are_one_line_exit_2(log, occurred_at, words):
    accepted(log, TRAINED[0])
    refused(log, "snapshot", "etl", {**SNAPSHOT, "snapshot_id": "s2", "occurred_at": occurred_at}, 2, words)


@pytest.mark.parametrize(
    "command", [["audit"], ["export", "--out", "x.avro"], ["models"], ["show", "pump"], ["lineage", "pump"], ["project"]]
)
def test_every_time_option_says_what_a_bare_date_means(command):
    result = CliRunner().invoke(main, [*command, "--help"], terminal_width=400)
    assert result.exit_code == 0
    helped = [line for line in result.output.splitlines() if line.strip().startswith(("--as-of ", "--since ", "--until "))]
    assert helped
    assert all("a bare date is midnight UTC at the start of that day" in line for line in helped), helped


BAD_JSON = [
    ('{"model": "pump", "version": 1, "environment": "production", "version": 2}', "appears twice"),
    ('{"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": Infinity}, "passed": true}', "not a JSON number"),
    ('{"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": 1e999}, "passed": true}', "finite"),
    ('{"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": "0.93"}, "passed": true}', "metrics.roc_auc"),
    ('{"model": "pump", "version": 1, "evaluation_snapshot_id": "s1", "metrics": {"roc_auc": 0.9}, "passed": true, "x": ' + "[" * 50000 + "]" * 50000 + "}", "nested"),
]


@pytest.mark.parametrize(("text", "words"), BAD_JSON)
def test_untrustworthy_json_is_one_line_exit_2_and_nothing_written(log, text, words):
    accepted(log, *TRAINED[:2])
    before = log.read_bytes()
    result = CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "emit", "evaluate", "--actor", "ci", "--json", "-"], input=text)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    assert log.read_bytes() == before


def test_what_was_stored_before_the_checks_prints_safely(log, tmp_path, monkeypatch):
    # Events accepted before issue 9: a hostile actor name and a NaN metric.
    monkeypatch.setattr("ledger.rules.admit", lambda draft, now, **_: None)
    hostile = "mallory\x1b[2K\rbob\nNEXT ROW\u202e"
    accepted(log, ("snapshot", "etl", SNAPSHOT), ("train", hostile, TRAIN))
    from ledger.client import Ledger
    from ledger.events import ModelEvaluated

    with Ledger.open(f"sqlite:///{log}") as ledger:
        ledger.emit(ModelEvaluated(model="pump", version=1, actor="ci", evaluation_snapshot_id="s1", metrics={"roc_auc": float("nan")}, passed=False))
    monkeypatch.undo()

    table = query(log, tmp_path, "audit")
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.stdout and "\r" not in table.stdout and "\u202e" not in table.stdout
    assert len(table.stdout.strip().splitlines()) == 1 + 3  # header + one line per event
    assert "mallory\\x1b[2K\\x0dbob\\x0aNEXT ROW\\u202e" in table.stdout
    for command in (["show", "pump"], ["show", "pump@1"], ["lineage", "pump@1"]):
        shown = query(log, tmp_path, *command)
        assert shown.exit_code == 0, shown.output
        assert "\x1b" not in shown.stdout and "\r" not in shown.stdout and "\u202e" not in shown.stdout
        assert not any(line.startswith("NEXT ROW") for line in shown.stdout.splitlines())

    def strict(name):
        raise AssertionError(f"{name} in --json output")

    for command in (["audit", "--json"], ["show", "pump", "--json"], ["show", "pump@1", "--json"], ["lineage", "pump@1", "--json"], ["models", "--json"]):
        out = query(log, tmp_path, *command)
        assert out.exit_code == 0, (command, out.output)
        json.loads(out.stdout, parse_constant=strict)


def _ledger(log, views, *args, env=None):
    return CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "--db", f"sqlite:///{views}", *args], env=env)


def _one_line(result, code, words):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.output, result.stderr


@pytest.mark.parametrize("command", [["models"], ["audit"], ["show", "pump"], ["lineage", "pump@1"], ["pending"], ["verify"], ["export", "--out", "e.avro"]])
def test_a_mistyped_log_path_is_no_such_ledger_not_an_empty_one(tmp_path, command):
    missing = tmp_path / "lgo.db"
    result = _ledger(missing, tmp_path / "views.db", *command)
    _one_line(result, 4, str(missing))
    assert not missing.exists()


@pytest.mark.parametrize("command", [["models"], ["audit"], ["verify"], ["emit", "snapshot", "--actor", "etl", "--json", "-"]])
def test_the_log_named_as_the_views_database_or_the_other_way_round_is_caught(log, tmp_path, command):
    accepted(log, TRAINED[0])
    views = tmp_path / "views.db"
    assert _ledger(log, views, "models").exit_code == 0  # builds the views database
    log_bytes, views_bytes = log.read_bytes(), views.read_bytes()
    swapped = CliRunner().invoke(main, ["--log", f"sqlite:///{views}", "--db", f"sqlite:///{views}", *command], input=json.dumps(SNAPSHOT))
    _one_line(swapped, 3, str(views))
    assert "not a ledger event log" in swapped.stderr
    if command[0] in ("models", "audit"):
        wrong_db = CliRunner().invoke(main, ["--db", f"sqlite:///{log}", "--log", f"sqlite:///{log}", *command])
        _one_line(wrong_db, 3, str(log))
        assert "is the ledger's event log" in wrong_db.stderr
    assert log.read_bytes() == log_bytes and views.read_bytes() == views_bytes


def test_views_mark_a_model_whose_stream_was_tampered_with_after_they_were_built(log, tmp_path):
    import sqlite3

    accepted(log, *TRAINED, ("snapshot", "etl", {**SNAPSHOT, "model": "fan"}))
    views = tmp_path / "views.db"
    first = json.loads(_ledger(log, views, "models", "--json").stdout)
    assert {m["model"]: m["verified"] for m in first} == {"pump": "ok", "fan": "ok"}

    conn = sqlite3.connect(log)
    position, data = conn.execute("SELECT position, data FROM events WHERE model = 'pump' AND sequence = 2").fetchone()
    changed = bytearray(data)
    changed[-3] ^= 0x01
    with conn:
        conn.execute("UPDATE events SET data = ? WHERE position = ?", (bytes(changed), position))
    conn.close()

    models = _ledger(log, views, "models")
    assert models.exit_code == 0, models.output
    marks = {line.split()[0]: line.split()[-1] for line in models.stdout.splitlines()[1:]}
    assert marks == {"fan": "ok", "pump": "FAILED"}
    assert "warning: the views of 'pump' cannot be trusted" in models.stderr
    shown = json.loads(_ledger(log, views, "show", "pump", "--json").stdout)
    assert shown["model"]["verified"] == "FAILED"
    assert json.loads(_ledger(log, views, "show", "pump@1", "--json").stdout)["verified"] == "FAILED"
    audit = _ledger(log, views, "audit", "--json")
    assert {(r["model"], r["verified"]) for r in json.loads(audit.stdout)} == {("pump", "FAILED"), ("fan", "ok")}
    assert "altered: pump#2" in audit.stderr
    fan = _ledger(log, views, "show", "fan")
    assert fan.exit_code == 0 and fan.stderr == ""
    frozen = _ledger(log, views, "models", "--no-refresh", "--json")
    assert {m["verified"] for m in json.loads(frozen.stdout)} == {"unchecked"}


@pytest.mark.parametrize("replace", [False, True], ids=["last-event-deleted", "last-event-replaced"])
def test_views_mark_a_model_whose_applied_events_the_log_no_longer_holds(log, tmp_path, replace):
    # Deleting a stream's last event (and, to hide it, recording another in its
    # place) leaves a log that verifies on its own; the views still show the deleted
    # event. They know which event they applied last: the log must still hold it.
    import sqlite3

    accepted(log, *TRAINED, ("snapshot", "etl", {**SNAPSHOT, "model": "fan"}), ("approve", "bob", APPROVE))
    views = tmp_path / "views.db"
    assert {m["model"]: m["verified"] for m in json.loads(_ledger(log, views, "models", "--json").stdout)} == {
        "pump": "ok", "fan": "ok"
    }
    conn = sqlite3.connect(log)
    with conn:
        conn.execute("DELETE FROM events WHERE model = 'pump' AND sequence = 4")
    conn.close()
    if replace:
        accepted(log, ("reject", "mallory", {**APPROVE, "reason": "rewritten"}))
    assert CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "verify"]).exit_code == 0  # the log alone: intact

    models = _ledger(log, views, "models")
    assert models.exit_code == 0, models.output
    marks = {line.split()[0]: line.split()[-1] for line in models.stdout.splitlines()[1:]}
    assert marks == {"fan": "ok", "pump": "FAILED"}
    warning = [line for line in models.stderr.splitlines() if "'pump'" in line]
    assert len(warning) == 1 and "#4" in warning[0] and "rebuild" in warning[0], models.stderr
    assert json.loads(_ledger(log, views, "show", "pump@1", "--json").stdout)["verified"] == "FAILED"


def test_export_does_not_overwrite_a_file_unless_forced(log, tmp_path):
    accepted(log, TRAINED[0])
    out = tmp_path / "evidence.avro"
    out.write_bytes(b"an auditor's earlier evidence")
    result = CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "export", "--out", str(out)])
    _one_line(result, 2, "use --force")
    assert out.read_bytes() == b"an auditor's earlier evidence"
    forced = CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "export", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert CliRunner().invoke(main, ["verify", "--file", str(out)]).exit_code == 0


def test_emitting_the_same_file_again_records_the_action_once(log):
    accepted(log, *TRAINED)
    approval = {**APPROVE, "occurred_at": "2026-11-29T10:00:00Z"}
    first, again = emit(log, "approve", "bob", approval), emit(log, "approve", "bob", approval)
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert "already recorded" in again.stdout and "already recorded" not in first.stdout
    from ledger.config import open_log

    with open_log(f"sqlite:///{log}") as opened:
        assert sum(1 for r in opened.read() if r.event_type == "ModelApproved") == 1


@pytest.mark.parametrize(
    "kind", ["snapshot", "train", "evaluate", "approve", "reject", "deploy", "drift", "retire", "feedback", "degraded"]
)
def test_schema_lists_every_field_an_emitter_gives(kind):
    from ledger.events import BY_CLI_NAME

    result = CliRunner().invoke(main, ["schema", kind, "--json"])
    assert result.exit_code == 0, result.output
    fields = {f["name"]: f for f in json.loads(result.stdout)}
    cls = BY_CLI_NAME[kind]
    assert {n for n in fields if "." not in n and "[" not in n} == set(cls.model_fields) - {"sequence", "prev_hash", "recorded_at", "replaced_version"}
    assert fields["model"]["required"] and fields["model"]["doc"] and fields["model"]["example"] == "churn"
    assert all(f["doc"] for f in fields.values()), [n for n, f in fields.items() if not f["doc"]]
    template = json.loads(CliRunner().invoke(main, ["schema", kind, "--template"]).stdout)
    assert "actor" not in template and "sequence" not in template


def test_schema_says_allowed_values_and_a_template_is_accepted_as_it_is(log):
    fields = {f["name"]: f for f in json.loads(CliRunner().invoke(main, ["schema", "train", "--json"]).stdout)}
    assert fields["trigger"]["allowed"] == "one of manual, drift, schedule, degradation"
    assert fields["trigger"]["default"] == "manual"
    assert not fields["trigger"]["required"] and fields["snapshot_ids"]["required"]
    deploy = {f["name"]: f for f in json.loads(CliRunner().invoke(main, ["schema", "deploy", "--json"]).stdout)}
    assert deploy["traffic_percent"]["allowed"] == "≥ 1; ≤ 100" and deploy["traffic_percent"]["default"] == 100
    assert deploy["traffic_percent"]["doc"]  # from ModelDeployed v2's Avro schema
    listed = CliRunner().invoke(main, ["schema", "--json"]).stdout
    assert {"FeedbackRecorded", "PerformanceDegraded"} <= {t["event"] for t in json.loads(listed)}
    evaluate = {f["name"]: f for f in json.loads(CliRunner().invoke(main, ["schema", "evaluate", "--json"]).stdout)}
    assert evaluate["passed"]["type"] == "boolean (true/false)"
    snapshot = json.loads(CliRunner().invoke(main, ["schema", "snapshot", "--template"]).stdout)
    result = emit(log, "snapshot", "etl", snapshot)
    assert result.exit_code == 0, result.output


def test_operators_find_pending_decisions_filter_by_environment_and_read_the_latest_first(log, tmp_path):
    fan = {**SNAPSHOT, "model": "fan"}
    accepted(
        log,
        *TRAINED, ("approve", "bob", APPROVE), ("deploy", "deployer", DEPLOY),
        ("train", "alice", {**TRAIN, "version": 2, "artifact_uri": "file:///a/2"}),
        ("evaluate", "ci", {**PASSED, "version": 2}),
        ("snapshot", "etl", fan),
        ("evaluate", "ci", PASSED),  # v1 again: its approval is stale, a decision is pending
    )
    views = tmp_path / "views.db"
    pending = json.loads(_ledger(log, views, "pending", "--json").stdout)
    assert [(p["model"], p["version"], p["status"]) for p in pending] == [("pump", 1, "evaluated"), ("pump", 2, "evaluated")]
    assert _ledger(log, views, "pending", "--model", "nope").exit_code == 4

    in_production = json.loads(_ledger(log, views, "models", "--environment", "production", "--json").stdout)
    assert [m["model"] for m in in_production] == ["pump"]
    assert json.loads(_ledger(log, views, "models", "--environment", "staging", "--json").stdout) == []
    shown = json.loads(_ledger(log, views, "show", "pump", "--environment", "production", "--json").stdout)
    assert [v["version"] for v in shown["versions"]] == [1]

    v2 = json.loads(_ledger(log, views, "audit", "--model", "pump", "--version", "2", "--json").stdout)
    assert [r["event_type"] for r in v2] == ["ModelTrained", "ModelEvaluated"]
    latest = json.loads(_ledger(log, views, "audit", "--newest-first", "--limit", "2", "--json").stdout)
    assert [(r["model"], r["event_type"]) for r in latest] == [("pump", "ModelEvaluated"), ("fan", "DataSnapshotted")]


def test_a_log_recorded_before_the_tightened_rules_still_verifies_and_takes_new_events(log, monkeypatch):
    from functools import partial

    from ledger import rules

    strict = rules.check
    with monkeypatch.context() as before_issue_9:
        before_issue_9.setattr("ledger.rules.check", partial(strict, history=True))
        before_issue_9.setattr("ledger.rules.admit", lambda draft, now, **_: None)
        accepted(
            log,
            ("retire", "ops", {"model": "ghost"}),
            *TRAINED,
            ("approve", "ALICE", APPROVE),  # the trainer, spelled differently
            ("evaluate", "ci", PASSED),
            ("deploy", "deployer", DEPLOY),  # on the approval that evaluation made stale
        )
    assert rules.check is strict
    verified = CliRunner().invoke(main, ["--log", f"sqlite:///{log}", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "intact" in verified.stdout
    refused(log, "deploy", "deployer", {**DEPLOY, "environment": "staging"}, 1, "needs a new approval")
    accepted(log, ("approve", "bob", APPROVE), ("deploy", "deployer", {**DEPLOY, "environment": "staging"}))
