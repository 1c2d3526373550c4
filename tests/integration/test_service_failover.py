"""Two service instances on one Kafka topic: the group gives each partition one
writer, requests reach the owner wherever they arrive, and a SIGKILLed owner's
partitions move to the survivor with nothing lost or duplicated."""

from __future__ import annotations

import time

import httpx
import pytest

from ledger import samples
from ledger.client import Ledger
from ledger.config import open_log
from tests.integration.service_harness import Server, free_port, make_principals
from tests.integration.test_service import as_json

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def owned(server: Server) -> set[int]:
    answer = httpx.get(f"{server.url}/readyz", timeout=5)
    return set(answer.json().get("partitions", [])) if answer.status_code == 200 else set()


def start_instance(log_url, tmp_path, name):
    port = free_port()
    return Server(
        log_url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / f'views-{name}.db'}", port=port,
        extra=["--advertise", f"http://127.0.0.1:{port}"],
    ).wait_ready(120)


def post_until_answered(http: httpx.Client, body: dict, give_up_s: float = 60) -> tuple[httpx.Response, float]:
    """Send one event until it is decided (retrying 503s with the same event id)."""
    started = time.monotonic()
    while True:
        try:
            answer = http.post("/v1/events", json=body)
            if answer.status_code != 503:
                return answer, time.monotonic() - started
        except httpx.TransportError:
            pass
        assert time.monotonic() - started < give_up_s, "no answer"
        time.sleep(0.2)


def test_two_instances_share_partitions_forward_and_fail_over(kafka_log_url, tmp_path):
    tokens = make_principals(tmp_path / "principals.toml")
    headers = {"Authorization": f"Bearer {tokens['writer']}"}
    a = start_instance(kafka_log_url, tmp_path, "a")
    b = start_instance(kafka_log_url, tmp_path, "b")
    try:
        deadline = time.monotonic() + 60
        while not (owned(a) and owned(b) and owned(a) | owned(b) == {0, 1, 2} and not owned(a) & owned(b)):
            assert time.monotonic() < deadline, (owned(a), owned(b), a.output()[-4000:], b.output()[-4000:])
            time.sleep(0.5)
        with open_log(kafka_log_url) as log:
            on_b = next(m for m in (f"m{i}" for i in range(1000)) if log.partition_for(m) in owned(b))
            on_a = next(m for m in (f"m{i}" for i in range(1000)) if log.partition_for(m) in owned(a))

        acknowledged: dict[str, dict] = {}
        with httpx.Client(base_url=a.url, headers=headers, timeout=30) as via_a:
            # A request reaching A for B's partition is forwarded to B.
            for n in range(5):
                for model in (on_a, on_b):
                    body = as_json(samples.snapshot(model, f"s{n}"))
                    answer = via_a.post("/v1/events", json=body)
                    assert answer.status_code == 201, answer.text
                    acknowledged[body["event_id"]] = body
                    assert ("x-ledger-served-by" in answer.headers) == (model == on_b)
            before_kill = as_json(samples.snapshot(on_b, "before-kill"))
            assert via_a.post("/v1/events", json=before_kill).status_code == 201
            acknowledged[before_kill["event_id"]] = before_kill

            b.kill()
            killed = time.monotonic()
            first = as_json(samples.snapshot(on_b, "after-kill"))
            answer, _ = post_until_answered(via_a, first)
            assert answer.status_code == 201, answer.text
            failover_s = time.monotonic() - killed
            acknowledged[first["event_id"]] = first
            assert "x-ledger-served-by" not in answer.headers  # A writes B's partition now
            assert failover_s < 30, failover_s

            # Retried across the failover: answered with the record B wrote, not written again.
            again = via_a.post("/v1/events", json=before_kill)
            assert again.status_code == 200 and again.json()["duplicate"] is True
            for n in range(5):
                body = as_json(samples.snapshot(on_b, f"later-{n}"))
                assert via_a.post("/v1/events", json=body).status_code == 201
                acknowledged[body["event_id"]] = body
        assert owned(a) == {0, 1, 2}
    finally:
        a.stop()
        b.stop()
    with Ledger.open(kafka_log_url) as ledger:
        events = list(ledger.events())
        report = ledger.verify()
    assert report.ok, report.problems
    ids = [str(e.event_id) for e in events]
    assert len(ids) == len(set(ids)) and set(ids) == set(acknowledged)
    print(f"\nfailover: first event accepted by the survivor {failover_s:.1f} s after SIGKILL of the owner")
