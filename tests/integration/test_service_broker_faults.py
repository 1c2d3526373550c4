"""Every call ends: the broker is SIGKILLed and restarted during appends.

A private broker (its own ports and data directory, started with
``scripts/kafka.sh``) — never the shared one. The service and a direct writer keep
appending while the broker is killed 5 times; every call must end within its
documented bound, readiness must report the outage, and afterwards every
acknowledged event is in the log exactly once and every chain verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from ledger import samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import BackendError, ConflictError
from tests.integration.service_harness import ROOT, Server, free_port, make_principals
from tests.integration.test_service import as_json

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILLS = 5
DEADLINE_S = 10.0
STEP_MS = 3000
"""The Kafka log's timeout_ms (and so its deadline_ms) in this test."""


class PrivateBroker:
    """A broker of this test's own (ports, data directory), via scripts/kafka.sh."""

    def __init__(self, data: Path, **env: str):
        self.port, self.controller = free_port(), free_port()
        self.env = {
            **os.environ,
            "LEDGER_KAFKA_DATA": str(data),
            "LEDGER_KAFKA_PORT": str(self.port),
            "LEDGER_KAFKA_CONTROLLER_PORT": str(self.controller),
            "LEDGER_KAFKA_HEAP": "-Xms128m -Xmx384m",
            **env,
        }
        self.pid_file = data / "kafka.pid"

    def script(self, command: str) -> None:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "kafka.sh"), command], env=self.env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]

    def kill(self) -> None:
        os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)
        time.sleep(0.5)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def broker(tmp_path, kafka_bootstrap):  # kafka_bootstrap: only to require Kafka's jars and Java
    private = PrivateBroker(tmp_path / "broker")
    private.script("start")
    yield private
    private.script("stop")


def test_broker_kills_during_appends_lose_nothing_and_every_call_ends(broker, tmp_path):
    tokens = make_principals(tmp_path / "principals.toml")
    url = f"kafka://{broker.bootstrap}/faults?partitions=2&timeout_ms={STEP_MS}"
    direct_url = f"kafka://{broker.bootstrap}/faults-direct?partitions=1&timeout_ms={STEP_MS}"
    open_log(direct_url).close()
    server = Server(url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'views.db'}", extra=["--deadline", str(DEADLINE_S)])
    server.wait_ready(120)
    stop = threading.Event()
    lock = threading.Lock()
    acknowledged: dict[str, str] = {}
    unknown: dict[str, dict] = {}
    durations: list[float] = []
    direct_durations: list[float] = []
    direct_acknowledged: set[str] = set()
    failures: list[str] = []

    def service_client(index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens['writer']}"}
        n = 0
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            while not stop.is_set():
                n += 1
                body = as_json(samples.snapshot(f"model-{index}", f"s{n}"))
                started = time.monotonic()
                answer = http.post("/v1/events", json=body)
                with lock:
                    durations.append(time.monotonic() - started)
                    if answer.status_code in (200, 201):
                        acknowledged[body["event_id"]] = body["model"]
                    elif answer.status_code == 503 and answer.json()["rule"] in ("outcome-unknown", "not-ready"):
                        unknown[body["event_id"]] = body
                        time.sleep(0.2)
                    else:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")

    def direct_client() -> None:
        n = 0
        with Ledger.open(direct_url) as ledger:
            while not stop.is_set():
                n += 1
                draft = samples.snapshot("direct", f"s{n}")
                for _ in range(200):  # retried with the same event id until it is in
                    started = time.monotonic()
                    try:
                        ledger.emit(draft)
                        direct_acknowledged.add(str(draft.event_id))
                        break
                    except (BackendError, ConflictError):
                        time.sleep(0.2)
                    finally:
                        direct_durations.append(time.monotonic() - started)
                    if stop.is_set():
                        break

    workers = [threading.Thread(target=service_client, args=(i,)) for i in range(4)]
    workers.append(threading.Thread(target=direct_client))
    for worker in workers:
        worker.start()
    outages_seen = 0
    recoveries: list[float] = []
    try:
        for _ in range(KILLS):
            time.sleep(4)
            broker.kill()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503:
                    outages_seen += 1
                    break
                time.sleep(0.2)
            broker.script("start")
            back = time.monotonic()
            deadline = back + 60
            while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "the service did not become ready again"
                time.sleep(0.2)
            recoveries.append(time.monotonic() - back)
        time.sleep(3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(120)

    try:
        assert not failures, failures[:5]
        assert outages_seen == KILLS, "readiness did not report every outage"
        # Every call ended within its bound: the service's deadline (plus the HTTP
        # round trip), and deadline_ms plus one step's timeout for a direct append.
        assert max(durations) <= DEADLINE_S + 2, max(durations)
        assert max(direct_durations) <= 2 * STEP_MS / 1000 + 3, max(direct_durations)
        # The outcome-unknown ones, retried with the same event ids, are in (once).
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens['writer']}"}, timeout=60) as http:
            for event_id, body in unknown.items():
                answer = http.post("/v1/events", json=body)
                assert answer.status_code in (200, 201), answer.text
                acknowledged[event_id] = body["model"]
    finally:
        server.stop()
    with Ledger.open(url) as ledger:
        ids = [str(e.event_id) for e in ledger.events()]
        report = ledger.verify()
    assert report.ok, report.problems
    assert len(ids) == len(set(ids))
    assert set(acknowledged) == set(ids)
    with Ledger.open(direct_url) as ledger:
        direct_ids = [str(e.event_id) for e in ledger.events()]
        assert ledger.verify().ok
    assert len(direct_ids) == len(set(direct_ids)) and direct_acknowledged <= set(direct_ids)
    print(
        f"\n{len(ids)} events through the service, {len(direct_ids)} direct, {KILLS} kills; "
        f"slowest call {max(durations):.1f} s (direct {max(direct_durations):.1f} s); "
        f"ready again {min(recoveries):.1f}-{max(recoveries):.1f} s after the broker restarted; "
        f"{len(unknown)} outcome-unknown answers retried"
    )
