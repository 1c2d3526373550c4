"""`ledger consume openlineage` through the shared runner, with each of the
openlineage-python client's transports: file, HTTP (a local receiver), console
and Kafka (the real broker). Every emitted event is validated against the official
OpenLineage schema (tests/openlineage_schema.py); each ledger event is sent once,
across re-runs, re-reads and a receiver that fails at first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from openlineage_schema import problems
from report_world import play

from consumers.openlineage import training_run_id
from ledger.cli import main
from ledger.config import open_log

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(log_url) as log:
        accepted = play(log)
    return {"log": log_url, "db": f"sqlite:///{tmp_path / 'consumers.db'}", "accepted": accepted, "dir": tmp_path}


def consume(world, config: Path, *extra: str):
    result = CliRunner().invoke(
        main, ["--log", world["log"], "--db", world["db"], "consume", "openlineage", "--once", "--config", str(config), *extra]
    )
    return result


def write_config(path: Path, body: str) -> Path:
    path.write_text('namespace = "acme"\n' + body, encoding="utf-8")
    return path


def check_events(events: list[dict], world) -> None:
    """Valid, one per ledger event, and linked as the mapping says."""
    for event in events:
        assert problems(event) == [], event
    ids = [
        (e.get("run") or {}).get("facets", {}).get("ledgerEvent", {}).get("eventId")
        or e["dataset"]["facets"]["ledgerEvent"]["eventId"]
        for e in events
    ]
    expected = sorted(str(a.event.event_id) for a in world["accepted"].values())
    assert sorted(ids) == expected
    by_job = {e["job"]["name"]: e for e in events if "job" in e and e["job"]["name"] == "churn.train" and e["run"]["runId"] == training_run_id("churn", 2)}
    retrained = by_job["churn.train"]
    alert = str(world["accepted"]["churn v1 drift"].event.event_id)
    assert retrained["run"]["facets"]["parent"]["run"]["runId"] == training_run_id("churn", 1)
    assert retrained["run"]["facets"]["ledgerTraining"]["alertRunId"] == alert
    assert any(e.get("job", {}).get("name") == "churn.drift_check" and e["run"]["runId"] == alert for e in events)


def test_file_transport_once_and_only_once(world):
    out = world["dir"] / "lineage.jsonl"
    config = write_config(world["dir"] / "ol.toml", f'[transport]\ntype = "file"\nlog_file_path = {json.dumps(str(out))}\nappend = true\n')
    result = consume(world, config)
    assert result.exit_code == 0, result.output
    assert f"{len(world['accepted'])} delivered" in result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    check_events([json.loads(line) for line in lines], world)
    assert all(json.loads(line)["producer"] for line in lines)
    # again, and re-reading the whole log: nothing is sent twice
    assert consume(world, config).exit_code == 0
    assert consume(world, config, "--from-beginning").exit_code == 0
    assert out.read_text(encoding="utf-8").splitlines() == lines


class Receiver:
    """An OpenLineage HTTP endpoint that fails its first ``failures`` requests."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.events: list[dict] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                assert self.path == "/api/v1/lineage"
                receiver.events.append(json.loads(body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_http_transport_survives_a_receiver_that_fails_at_first(world):
    receiver = Receiver(failures=3)
    try:
        config = write_config(
            world["dir"] / "ol.toml",
            f'[transport]\ntype = "http"\nurl = "{receiver.url}"\ntimeout = 5\n'
            "[transport.retry]\ntotal = 0\n"  # the runner retries, not the client
            "[retry]\nmax_attempts = 5\nbase_delay = 0.01\nmax_delay = 0.05\n",
        )
        result = consume(world, config, "--max-wait", "10")
        assert result.exit_code == 0, result.output
        assert "0 dead" in result.output
        check_events(receiver.events, world)
        assert receiver.requests == len(world["accepted"]) + 3
        assert consume(world, config, "--from-beginning").exit_code == 0
        assert len(receiver.events) == len(world["accepted"])
    finally:
        receiver.close()


def test_console_transport_prints_one_event_a_line(world):
    config = write_config(world["dir"] / "ol.toml", '[transport]\ntype = "console"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", "from ledger.cli import main; main(prog_name='ledger')",
         "--log", world["log"], "--db", world["db"], "consume", "openlineage", "--once", "--config", str(config)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    check_events([json.loads(line) for line in done.stdout.splitlines() if line.strip()], world)


@pytest.mark.kafka
def test_kafka_transport_to_the_real_broker(world, kafka_bootstrap):
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"openlineage-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])  # the broker creates no topic on first use
    finally:
        admin.close()
    config = write_config(
        world["dir"] / "ol.toml",
        f'[transport]\ntype = "kafka"\ntopic = "{topic}"\nflush = true\n'
        f'[transport.config]\n"bootstrap.servers" = "{kafka_bootstrap}"\n"acks" = "all"\n',
    )
    result = consume(world, config)
    assert result.exit_code == 0, result.output
    reader = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    try:
        events = [json.loads(m.value) for m in reader]
    finally:
        reader.close()
    check_events(events, world)


@pytest.mark.kafka
def test_kafka_transport_loses_nothing_while_the_topic_is_missing(world, kafka_bootstrap):
    """The broker refuses events for a topic it does not have: none may be recorded
    as delivered (openlineage-python's own transport only logs the refusal); once the
    topic exists, every event arrives, once. The runner's clock is the test's, so the
    retries are due when the test says, not seconds later."""
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    from consumers.openlineage import OpenLineageConsumer
    from consumers.runner import RetryPolicy, Runner

    topic = f"openlineage-late-{uuid.uuid4().hex[:8]}"
    settings = {
        "transport": {
            "type": "kafka", "topic": topic, "flush": True,
            "config": {"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": "300"},
        },
        "retry": {"max_attempts": 10, "base_delay": 60.0, "max_delay": 60.0, "jitter": 0.0},
    }
    now = [1_000_000.0]

    def run():
        consumer = OpenLineageConsumer(settings)
        assert consumer.retry == RetryPolicy(10, 60.0, 60.0, 0.0)
        log = open_log(world["log"])
        try:
            return Runner(consumer, log, world["db"], clock=lambda: now[0]).run_once(max_wait=0)
        finally:
            consumer.close()
            log.close()

    first = run()
    assert (first.delivered, first.dead_effects, first.waiting) == (0, 0, len(world["accepted"]))
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    now[0] += 61
    second = run()
    assert (second.delivered, second.waiting) == (len(world["accepted"]), 0)
    reader = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    try:
        events = [json.loads(m.value) for m in reader]
    finally:
        reader.close()
    check_events(events, world)


@pytest.mark.parametrize(
    "body, message",
    [
        ("[transport]\ntype = \"carrier-pigeon\"\n", "needs type = one of"),
        ("colour = 'blue'\n", "unknown key(s) colour"),
        ("[transport\n", "not valid TOML"),
        ('[transport]\ntype = "http"\n', "bad OpenLineage transport configuration"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(world, body, message):
    config = world["dir"] / "bad.toml"
    config.write_text(body, encoding="utf-8")
    result = consume(world, config)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
