"""The notification consumer against real receivers (a local HTTP server, a local
SMTP server, a file), on the embedded log and a real Kafka broker, with its state
in SQLite and in a real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from receivers import HttpReceiver, SmtpReceiver

from consumers import store as consumer_store
from consumers.channels import verify_signature
from consumers.notify import NotifyConfig, NotifyConsumer
from consumers.runner import Runner
from ledger.cli import main
from ledger.client import Ledger
from ledger.config import open_log
from ledger.events import (
    ApprovalRejected,
    ColumnSpec,
    DataContract,
    DataSnapshotted,
    DriftDetected,
    ModelApproved,
    ModelDeployed,
    ModelEvaluated,
    ModelRetired,
    ModelTrained,
)

SECRET = "s3cret-shared-with-the-receiver"
FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05, "jitter": 0.1}
NOTIFIED = {"ModelApproved", "ModelDeployed", "DriftDetected", "ApprovalRejected", "ModelRetired"}


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request, tmp_path):
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("kafka_log_url")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'views.db'}"
    return request.getfixturevalue("fresh_postgres")


@pytest.fixture
def sqlite_db(tmp_path):
    return f"sqlite:///{tmp_path / 'views.db'}"


@pytest.fixture
def embedded_log(tmp_path):
    return f"sqlite:///{tmp_path / 'log.db'}"


@pytest.fixture(autouse=True)
def _fresh_engines():
    # Each test gets a new database at the same kind of URL: no engine may outlive it.
    yield
    consumer_store.dispose_engines()


def lifecycle(log_url: str, model: str = "churn") -> list:
    """A model's life with one of each notified event: approve, deploy, drift,
    reject, retire. Returns the accepted events."""
    contract = DataContract(columns=(ColumnSpec(name="tenure"), ColumnSpec(name="churned", dtype="int")), target="churned")
    events = [
        DataSnapshotted(model=model, actor="etl", dataset="customers", snapshot_id="s1", content_hash="sha256:1", row_count=100, contract=contract),
        ModelTrained(model=model, version=1, actor="alice", snapshot_ids=("s1",), code_ref="git:1", artifact_uri="file:///a/1", artifact_hash="sha256:a1"),
        ModelEvaluated(model=model, version=1, actor="ci", evaluation_snapshot_id="s1", metrics={"auc": 0.9}, thresholds={"auc": 0.8}, passed=True),
        ModelApproved(model=model, version=1, actor="bob", reason="beats the baseline"),
        ModelDeployed(model=model, version=1, actor="deployer", environment="production"),
        DriftDetected(model=model, version=1, actor="monitor", environment="production", metric="psi", feature="tenure", value=0.31, threshold=0.2, reference_snapshot_id="s1"),
        ModelTrained(model=model, version=2, actor="alice", snapshot_ids=("s1",), code_ref="git:2", artifact_uri="file:///a/2", artifact_hash="sha256:a2", parent_version=1),
        ModelEvaluated(model=model, version=2, actor="ci", evaluation_snapshot_id="s1", metrics={"auc": 0.7}, thresholds={"auc": 0.8}, passed=False),
        ApprovalRejected(model=model, version=2, actor="bob", reason="auc below threshold"),
        ModelRetired(model=model, version=2, actor="ops", reason="rejected"),
    ]
    with Ledger.open(log_url) as ledger:
        return [ledger.emit(e).event for e in events]


def config(**channels) -> NotifyConfig:
    return NotifyConfig.parse({"retry": FAST_RETRY, **channels}, "test")


def run(log_url, db_url, cfg: NotifyConfig, *, max_wait=10.0, from_beginning=False, clock=time.time, env=None):
    consumer = NotifyConsumer(cfg, env or {}, clock=clock)
    with open_log(log_url) as event_log:
        runner = Runner(consumer, event_log, db_url, clock=clock)
        try:
            return runner.run_once(max_wait=max_wait, from_beginning=from_beginning)
        finally:
            runner.close()


def deliveries(db_url, status=None):
    store = consumer_store.Store(consumer_store.engine_for(db_url), "notify")
    return store.list_effects(status)


def dead_letters(db_url):
    return consumer_store.Store(consumer_store.engine_for(db_url), "notify").list_dead_letters()


# --- every channel, once ----------------------------------------------------------


def test_each_event_is_delivered_once_to_every_channel(log_url, db_url, tmp_path):
    accepted = lifecycle(log_url)
    notified = [e for e in accepted if e.event_type in NOTIFIED]
    lines = tmp_path / "notifications.jsonl"
    with HttpReceiver() as hook, SmtpReceiver() as smtp:
        cfg = config(
            webhook=[{"url": hook.url, "secret": SECRET}],
            email=[{"host": smtp.host, "port": smtp.port, "from": "ledger@example.com", "to": ["oncall@example.com"]}],
            file=[{"path": str(lines)}],
        )
        report = run(log_url, db_url, cfg)

        assert report.delivered == 3 * len(notified)
        # The webhook: one signed request per notified event, in the documented shape.
        bodies = [r.json for r in hook.requests]
        assert [b["event_id"] for b in bodies] == [str(e.event_id) for e in notified]
        for request in hook.requests:
            assert verify_signature(SECRET, request.headers, request.body, now=time.time())
            assert request.headers["Idempotency-Key"] == request.headers["X-Ledger-Delivery"]
        deploy = next(b for b in bodies if b["event_type"] == "ModelDeployed")
        assert deploy["model"] == "churn" and deploy["version"] == 1 and deploy["actor"] == "deployer"
        assert deploy["event"]["environment"] == "production"
        assert set(deploy) == {"event_id", "event_type", "model", "version", "actor", "occurred_at", "summary", "event"}
        # E-mail: one message per event, with a subject a person can act on.
        subjects = [m.message["Subject"] for m in smtp.messages]
        assert "[ledger] churn v1 deployed to production by deployer" in subjects
        assert "[ledger] churn v2 rejected by bob" in subjects
        assert len(smtp.messages) == len(notified)
        assert all(m.recipients == ["oncall@example.com"] for m in smtp.messages)
        # File: one JSON line per event.
        written = [json.loads(line) for line in lines.read_text().splitlines()]
        assert [w["event_id"] for w in written] == [str(e.event_id) for e in notified]

        # Running again, re-reading the whole log, or losing the positions sends nothing twice.
        run(log_url, db_url, cfg)
        run(log_url, db_url, cfg, from_beginning=True)
        consumer_store.Store(consumer_store.engine_for(db_url), "notify").reset_positions()
        again = run(log_url, db_url, cfg)
        assert again.records == len(accepted) and again.new_effects == 0 and again.delivered == 0
        assert len(hook.requests) == len(notified)
        assert len(smtp.messages) == len(notified)
        assert len(lines.read_text().splitlines()) == len(notified)

    rows = deliveries(db_url)
    assert len(rows) == 3 * len(notified)
    assert {r["status"] for r in rows} == {"delivered"}


def test_new_events_are_picked_up_on_the_next_run(embedded_log, sqlite_db, tmp_path):
    lines = tmp_path / "out.jsonl"
    cfg = config(file=[{"path": str(lines)}])
    lifecycle(embedded_log, "churn")
    run(embedded_log, sqlite_db, cfg)
    first = len(lines.read_text().splitlines())
    lifecycle(embedded_log, "fraud")
    report = run(embedded_log, sqlite_db, cfg)
    assert report.records == 10  # only the new model's events were read
    written = [json.loads(line)["model"] for line in lines.read_text().splitlines()]
    assert written == ["churn"] * first + ["fraud"] * first


# --- retries and dead letters ------------------------------------------------------


def test_a_receiver_that_fails_twice_then_succeeds_gets_it_on_the_third_attempt(embedded_log, db_url):
    lifecycle(embedded_log)
    with HttpReceiver(script=[500, 503, 200, 200]) as hook:
        cfg = config(webhook=[{"url": hook.url, "secret": SECRET}], events=["deploy"])
        report = run(embedded_log, db_url, cfg)
    assert report.delivered == 1 and report.dead_effects == 0
    assert [r.status for r in hook.requests] == [500, 503, 200]
    # Every attempt is the same delivery, so the receiver could have de-duplicated.
    assert len({r.headers["X-Ledger-Delivery"] for r in hook.requests}) == 1
    assert [r.headers["X-Ledger-Attempt"] for r in hook.requests] == ["1", "2", "3"]
    (row,) = deliveries(db_url)
    assert row["status"] == "delivered" and row["attempts"] == 3
    assert "HTTP 503" in row["last_error"]
    assert dead_letters(db_url) == []


def test_a_receiver_that_always_fails_ends_in_the_dead_letters(embedded_log, db_url, tmp_path):
    lifecycle(embedded_log)
    lines = tmp_path / "out.jsonl"
    with HttpReceiver(script=[502]) as hook:
        cfg = config(webhook=[{"url": hook.url}], file=[{"path": str(lines)}], events=["approve", "deploy"])
        report = run(embedded_log, db_url, cfg)
    assert len(hook.requests) == 2 * FAST_RETRY["max_attempts"]
    assert report.dead_effects == 2
    dead = deliveries(db_url, "dead")
    assert {r["channel"] for r in dead} == {"webhook"}
    assert all(r["attempts"] == FAST_RETRY["max_attempts"] for r in dead)
    assert all("gave up after 3 attempt(s)" in r["last_error"] and "HTTP 502" in r["last_error"] for r in dead)
    letters = dead_letters(db_url)
    assert sorted(letter["effect_id"] for letter in letters) == sorted(r["id"] for r in dead)
    assert all("HTTP 502" in letter["reason"] for letter in letters)
    # The failing webhook held nothing else up.
    assert len(lines.read_text().splitlines()) == 2
    # A dead delivery is not retried by later runs.
    with HttpReceiver() as hook:
        run(embedded_log, db_url, config(webhook=[{"url": hook.url}], file=[{"path": str(lines)}], events=["approve", "deploy"]))
        assert hook.requests == []


def test_a_refusal_is_dead_at_once_without_retrying(embedded_log, sqlite_db):
    lifecycle(embedded_log)
    with HttpReceiver(script=[410]) as hook:
        report = run(embedded_log, sqlite_db, config(webhook=[{"url": hook.url}], events=["deploy"]))
    assert len(hook.requests) == 1 and report.dead_effects == 1
    (row,) = deliveries(sqlite_db, "dead")
    assert row["attempts"] == 1 and "HTTP 410" in row["last_error"]


def test_an_unreachable_webhook_is_retried_then_dead(embedded_log, sqlite_db):
    lifecycle(embedded_log)
    with HttpReceiver() as hook:
        url = hook.url  # the port is free again once the receiver stops
    run(embedded_log, sqlite_db, config(webhook=[{"url": url, "timeout": 2}], events=["deploy"]))
    (row,) = deliveries(sqlite_db, "dead")
    assert row["attempts"] == FAST_RETRY["max_attempts"]
    assert "unreachable" in row["last_error"]


def test_retries_whose_backoff_outlasts_max_wait_are_left_for_the_next_run(embedded_log, sqlite_db):
    lifecycle(embedded_log)
    slow = {"max_attempts": 3, "base_delay": 3600, "max_delay": 3600, "jitter": 0}
    now = [1_000_000.0]
    with HttpReceiver(script=[500, 200]) as hook:
        cfg = NotifyConfig.parse({"retry": slow, "webhook": [{"url": hook.url}], "events": ["deploy"]}, "test")
        report = run(embedded_log, sqlite_db, cfg, max_wait=5, clock=lambda: now[0])
        assert report.waiting == 1 and len(hook.requests) == 1
        (row,) = deliveries(sqlite_db, "retrying")
        assert row["next_attempt_at"] == now[0] + 3600
        run(embedded_log, sqlite_db, cfg, max_wait=5, clock=lambda: now[0] + 10)
        assert len(hook.requests) == 1  # not due yet
        run(embedded_log, sqlite_db, cfg, max_wait=5, clock=lambda: now[0] + 3601)
        assert [r.status for r in hook.requests] == [500, 200]
    assert deliveries(sqlite_db, "delivered")[0]["attempts"] == 2


def test_a_refused_recipient_is_dead_and_a_partial_refusal_is_not_resent(embedded_log, sqlite_db):
    lifecycle(embedded_log)
    with SmtpReceiver(refuse={"nobody@example.com": "550 5.1.1 no such user"}) as smtp:
        cfg = config(
            email=[
                {"name": "to-nobody", "host": smtp.host, "port": smtp.port, "from": "ledger@example.com", "to": "nobody@example.com"},
                {"name": "mixed", "host": smtp.host, "port": smtp.port, "from": "ledger@example.com", "to": "nobody@example.com, oncall@example.com"},
            ],
            events=["deploy"],
        )
        run(embedded_log, sqlite_db, cfg)
        assert [m.recipients for m in smtp.messages] == [["oncall@example.com"]]
    rows = {r["channel"]: r for r in deliveries(sqlite_db)}
    assert rows["to-nobody"]["status"] == "dead" and rows["to-nobody"]["attempts"] == 1
    assert "550" in rows["to-nobody"]["last_error"]
    assert rows["mixed"]["status"] == "delivered" and "nobody@example.com" in rows["mixed"]["outcome"]


# --- crashes and bad records --------------------------------------------------------


def test_a_consumer_killed_between_sending_and_recording_resends_the_same_delivery_after_the_lease(embedded_log, db_url, tmp_path):
    # A real `ledger consume notify` process, SIGKILLed by the fault point
    # notify-after-send: the webhook got the delivery, the store never heard.
    lifecycle(embedded_log)
    toml = tmp_path / "notify.toml"
    with HttpReceiver() as hook:
        toml.write_text(f'events = ["deploy"]\n[[webhook]]\nurl = "{hook.url}"\nsecret = "{SECRET}"\n')
        command = [sys.executable, "-m", "ledger.cli", "--log", embedded_log, "--db", db_url,
                   "consume", "notify", "--once", "--config", str(toml)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        killed = subprocess.run(
            command, env={**env, "LEDGER_FAULT_POINT": "notify-after-send"}, capture_output=True, text=True, timeout=120
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert len(hook.requests) == 1
        assert deliveries(db_url)[0]["status"] == "sending"

        # Within the lease, a restarted consumer leaves it alone (the sender might be alive).
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert len(hook.requests) == 1
        # After it, the delivery is presumed lost and sent again, with the same id.
        cfg = config(webhook=[{"url": hook.url, "secret": SECRET}], events=["deploy"])
        later = time.time() + NotifyConsumer.lease_seconds + 1
        run(embedded_log, db_url, cfg, max_wait=0, clock=lambda: later)
    assert len(hook.requests) == 2
    assert hook.requests[0].headers["X-Ledger-Delivery"] == hook.requests[1].headers["X-Ledger-Delivery"]
    assert [r["status"] for r in deliveries(db_url)] == ["delivered"]


def test_an_undecodable_record_in_the_embedded_log_is_dead_lettered_and_the_consumer_goes_on(tmp_path, sqlite_db):
    log_path = tmp_path / "log.db"
    log_url = f"sqlite:///{log_path}"
    lifecycle(log_url, "churn")
    with sqlite3.connect(log_path) as conn:  # damage that bypassed the append path
        conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('noise', 1, 'not-an-event', 'ModelDeployed', x'00', x'c301deadbeef', 'x', 0)"
        )
    lifecycle(log_url, "fraud")
    lines = tmp_path / "out.jsonl"
    cfg = config(file=[{"path": str(lines)}])
    report = run(log_url, sqlite_db, cfg)
    assert report.dead_records == 1
    (letter,) = dead_letters(sqlite_db)
    assert letter["kind"] == "record" and letter["partition"] == 0 and letter["offset"] == 11
    assert "undecodable" in letter["reason"] and letter["data"] == bytes.fromhex("c301deadbeef")
    models = [json.loads(line)["model"] for line in lines.read_text().splitlines()]
    assert models.count("fraud") == models.count("churn") == 5
    # Re-reading the log adds no second dead letter for the same record.
    run(log_url, sqlite_db, cfg, from_beginning=True)
    assert len(dead_letters(sqlite_db)) == 1


@pytest.mark.kafka
def test_an_undecodable_record_on_kafka_is_dead_lettered_and_the_consumer_goes_on(kafka_bootstrap, kafka_log_url, sqlite_db, tmp_path):
    from kafka import KafkaProducer

    lifecycle(kafka_log_url, "churn")
    with open_log(kafka_log_url) as event_log:
        topic = event_log.topic
        partition = event_log.partition_for("churn")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        metadata = producer.send(topic, key=b"junk", value=b"\x00not avro at all", partition=partition).get(timeout=30)
    finally:
        producer.close()
    lifecycle(kafka_log_url, "fraud")
    lines = tmp_path / "out.jsonl"
    report = run(kafka_log_url, sqlite_db, config(file=[{"path": str(lines)}]))
    assert report.dead_records == 1
    (letter,) = dead_letters(sqlite_db)
    assert (letter["partition"], letter["offset"]) == (partition, metadata.offset)
    assert "not Avro single-object encoding" in letter["reason"]
    models = [json.loads(line)["model"] for line in lines.read_text().splitlines()]
    assert models.count("fraud") == models.count("churn") == 5


# --- the command line ------------------------------------------------------------------


def test_consume_and_list_from_the_command_line(embedded_log, sqlite_db, tmp_path):
    lifecycle(embedded_log)
    toml = tmp_path / "notify.toml"
    with HttpReceiver(script=[500]) as hook:
        toml.write_text(
            f"""
events = ["deploy", "drift"]
[retry]
max_attempts = 2
base_delay = 0.01
[[webhook]]
name = "ops"
url = "{hook.url}"
secret_env = "OPS_SECRET"
[[file]]
path = "{tmp_path / 'out.jsonl'}"
"""
        )
        cli = CliRunner()
        base = ["--log", embedded_log, "--db", sqlite_db]
        result = cli.invoke(main, [*base, "consume", "notify", "--once", "--config", str(toml)], env={"OPS_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    assert "2 delivered" in result.stderr and "2 dead" in result.stderr
    assert len(hook.requests) == 4
    assert all(verify_signature(SECRET, r.headers, r.body, now=time.time()) for r in hook.requests)

    listed = json.loads(cli.invoke(main, [*base, "notifications", "--json"]).stdout)
    assert sorted((r["channel"], r["status"]) for r in listed) == [("file", "delivered")] * 2 + [("ops", "dead")] * 2
    dead = cli.invoke(main, [*base, "notifications", "--status", "dead"]).stdout
    assert dead.count("HTTP 500") == 2 and "ModelDeployed" in dead and "DriftDetected" in dead
    letters = json.loads(cli.invoke(main, [*base, "notifications", "--dead-letters", "--format", "json"]).stdout)
    assert len(letters) == 2 and all("HTTP 500" in letter["reason"] for letter in letters)
    csv_out = cli.invoke(main, [*base, "notifications", "--csv", "--status", "delivered"]).stdout
    assert csv_out.splitlines()[0].startswith("delivery,event_type,model")
    assert len(csv_out.splitlines()) == 3


@pytest.mark.parametrize(
    "toml, env, message",
    [
        ("[[webhook]]\nurl = 'ftp://example.com'\n", {}, "webhook.0.url"),
        ("[[email]]\nhost = 'smtp'\nfrom = 'ledger@example.com'\n", {}, "email.0.to"),
        ("events = ['promote']\n[[file]]\npath = '-'\n", {}, "unknown event type 'promote'"),
        ("[[file]]\npath = 'a'\n[[file]]\npath = 'b'\n", {}, "channel names must be unique"),
        ("[[webhook]]\nurl = 'http://x'\nsecret_env = 'MISSING_SECRET'\n", {}, "MISSING_SECRET is not set"),
        ("[retry]\nmax_attempts = 0\n[[file]]\npath = '-'\n", {}, "retry.max_attempts"),
        ("events = [\n", {}, "not valid TOML"),
        ("", {}, "no notification channel configured"),
    ],
)
def test_a_bad_configuration_is_refused_with_exit_2_and_nothing_recorded(embedded_log, sqlite_db, tmp_path, toml, env, message):
    lifecycle(embedded_log)
    path = tmp_path / "notify.toml"
    path.write_text(toml)
    result = CliRunner().invoke(
        main, ["--log", embedded_log, "--db", sqlite_db, "consume", "notify", "--config", str(path)], env=env
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert deliveries(sqlite_db) == []


def test_environment_variables_configure_the_channels(embedded_log, sqlite_db, tmp_path):
    lifecycle(embedded_log)
    lines = tmp_path / "env.jsonl"
    with HttpReceiver() as hook, SmtpReceiver() as smtp:
        env = {
            "LEDGER_NOTIFY_WEBHOOK_URL": hook.url,
            "LEDGER_NOTIFY_WEBHOOK_SECRET": SECRET,
            "LEDGER_NOTIFY_SMTP": f"{smtp.host}:{smtp.port}",
            "LEDGER_NOTIFY_EMAIL_FROM": "ledger@example.com",
            "LEDGER_NOTIFY_EMAIL_TO": "a@example.com,b@example.com",
            "LEDGER_NOTIFY_FILE": str(lines),
            "LEDGER_NOTIFY_EVENTS": "drift,retire",
        }
        result = CliRunner().invoke(main, ["--log", embedded_log, "--db", sqlite_db, "consume", "notify"], env=env)
        assert result.exit_code == 0, result.output
        assert sorted(r.json["event_type"] for r in hook.requests) == ["DriftDetected", "ModelRetired"]
        assert all(verify_signature(SECRET, r.headers, r.body, now=time.time()) for r in hook.requests)
        assert [m.recipients for m in smtp.messages] == [["a@example.com", "b@example.com"]] * 2
    assert len(lines.read_text().splitlines()) == 2


def test_stdout_channel_prints_one_json_line_per_event(embedded_log, sqlite_db):
    lifecycle(embedded_log)
    result = CliRunner().invoke(
        main, ["--log", embedded_log, "--db", sqlite_db, "consume", "notify"], env={"LEDGER_NOTIFY_FILE": "-"}
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event_type"] for line in lines] == [
        "ModelApproved", "ModelDeployed", "DriftDetected", "ApprovalRejected", "ModelRetired"
    ]
    assert all(line["delivery_id"] for line in lines)


def test_follow_delivers_as_events_arrive_and_stops_cleanly_on_sigterm(embedded_log, sqlite_db, tmp_path):
    lines = tmp_path / "follow.jsonl"
    env = {**os.environ, "LEDGER_NOTIFY_FILE": str(lines), "LEDGER_LOG": embedded_log, "LEDGER_DB": sqlite_db}
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "consume", "notify", "--follow", "--poll-interval", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lifecycle(embedded_log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not lines.exists() or len(lines.read_text().splitlines()) < 5):
            time.sleep(0.1)
        assert len(lines.read_text().splitlines()) == 5
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "5 delivered" in stderr
    # Nothing is sent twice by the next run.
    result = CliRunner().invoke(main, ["--log", embedded_log, "--db", sqlite_db, "consume", "notify"], env={"LEDGER_NOTIFY_FILE": str(lines)})
    assert result.exit_code == 0 and "0 delivered" in result.stderr
    assert len(lines.read_text().splitlines()) == 5


def test_deliveries_listing_is_empty_on_a_fresh_database(tmp_path):
    db = f"sqlite:///{tmp_path / 'fresh' / 'views.db'}"
    result = CliRunner().invoke(main, ["--db", db, "notifications"])
    assert result.exit_code == 0 and "(none)" in result.stdout


def test_an_unreachable_broker_is_one_line_and_exit_3_not_the_kafka_clients_chatter(sqlite_db):
    # Nothing listens on port 1: kafka-python logs every failed connection attempt.
    log_url = "kafka://127.0.0.1:1/ledger-nowhere?timeout_ms=1500"
    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--log", log_url, "--db", sqlite_db, "consume", "notify", "--once"],
        env={**os.environ, "LEDGER_NOTIFY_FILE": "-"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [result.stderr.splitlines()[-1]], result.stderr
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", [["notifications"], ["consume", "notify", "--once"], ["consume", "retrain", "--once"]])
def test_an_unreachable_consumer_database_is_one_line_and_exit_3(embedded_log, command):
    db = "postgresql+psycopg://ledger:hunter2@127.0.0.1:1/nowhere"  # nothing listens on port 1
    result = CliRunner().invoke(main, ["--log", embedded_log, "--db", db, *command], env={"LEDGER_NOTIFY_FILE": "-"})
    assert result.exit_code == 3, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "127.0.0.1:1" in result.stderr and "Connection refused" in result.stderr
    assert "hunter2" not in result.stderr


def test_the_json_listings_are_plain_json_with_iso_times(tmp_path, sqlite_db):
    log_path = tmp_path / "log.db"
    log_url = f"sqlite:///{log_path}"
    lifecycle(log_url, "churn")
    with sqlite3.connect(log_path) as conn:  # a damaged record, for a dead letter with bytes
        conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('noise', 1, 'not-an-event', 'ModelDeployed', x'00', x'c301deadbeef', 'x', 0)"
        )
    cli = CliRunner()
    base = ["--log", log_url, "--db", sqlite_db]
    ran = cli.invoke(main, [*base, "consume", "notify", "--once"], env={"LEDGER_NOTIFY_FILE": str(tmp_path / "n.jsonl")})
    assert ran.exit_code == 0, ran.output

    listed = json.loads(cli.invoke(main, [*base, "notifications", "--json"]).stdout)
    assert len(listed) == 5
    for row in listed:
        for name in ("created_at", "updated_at", "finished_at"):
            assert row[name].endswith("+00:00"), (name, row[name])  # one time format, not epoch floats
        assert row["payload"]["message"]["event_id"] == row["event_id"]  # an object, not JSON in a string
    (letter,) = json.loads(cli.invoke(main, [*base, "notifications", "--dead-letters", "--json"]).stdout)
    assert letter["data"] == "c301deadbeef" and letter["recorded_at"].endswith("+00:00")


def test_line_breaks_in_recorded_names_cannot_break_or_inject_into_the_email(embedded_log, sqlite_db, monkeypatch):
    # An actor was free text in the ledger before issue 9 (the append path refuses a
    # line break in one now): such a stored name still reaches the subject.
    monkeypatch.setattr("ledger.identity.check_name", lambda name, what="actor": name)
    contract = DataContract(columns=(ColumnSpec(name="x"), ColumnSpec(name="y", dtype="int")), target="y")
    with Ledger.open(embedded_log) as ledger:
        for event in (
            DataSnapshotted(model="m", actor="etl", dataset="d", snapshot_id="s1", content_hash="sha256:1", row_count=1, contract=contract),
            ModelTrained(model="m", version=1, actor="alice", snapshot_ids=("s1",), code_ref="git:1", artifact_uri="file:///a", artifact_hash="sha256:a"),
            ModelEvaluated(model="m", version=1, actor="ci", evaluation_snapshot_id="s1", metrics={"auc": 0.9}, thresholds={"auc": 0.8}, passed=True),
            ModelApproved(model="m", version=1, actor="bob\r\nBcc: eve@example.com", reason="ok"),
        ):
            ledger.emit(event)
    with SmtpReceiver() as smtp:
        cfg = config(email=[{"host": smtp.host, "port": smtp.port, "from": "ledger@example.com", "to": ["oncall@example.com"]}])
        report = run(embedded_log, sqlite_db, cfg, max_wait=0)
        assert report.delivered == 1, deliveries(sqlite_db)
        (mail,) = smtp.messages
    assert mail.recipients == ["oncall@example.com"]
    assert mail.message["Bcc"] is None
    assert mail.message["Subject"] == "[ledger] m v1 approved by bob Bcc: eve@example.com"
