"""Group commit under concurrency: many clients on one partition, through the real
service, on the embedded log and on a real broker."""

from __future__ import annotations

import re
import threading
import uuid

import httpx
import pytest

from ledger import samples
from ledger.client import Ledger
from ledger.config import open_log
from tests.integration.service_harness import Server, make_principals
from tests.integration.test_service import as_json


from tests.integration.service_harness import log_url, server, tokens  # noqa: E402,F401 - the service tests' shared fixtures


def models_on_one_partition(log_url: str, count: int) -> list[str]:
    with open_log(log_url) as log:
        names = (f"m{i}" for i in range(10_000))
        return [n for n in names if log.partition_for(n) == 0][:count]


def run_together(jobs) -> None:
    start = threading.Barrier(len(jobs))
    errors = []

    def wrapped(job):
        try:
            start.wait()
            job()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors


def test_concurrent_clients_are_each_decided_once_and_chains_stay_intact(server, tokens, log_url):
    models = models_on_one_partition(log_url, 4)
    headers = {"Authorization": f"Bearer {tokens['writer']}"}
    answers: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def client_job(index: int):
        model = models[index % len(models)]
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for n in range(12):
                event = samples.snapshot(model, f"c{index}-{n}")
                answer = http.post("/v1/events", json=as_json(event))
                with lock:
                    answers.append((str(event.event_id), answer.status_code, answer.json()))

    def contested_job(index: int):
        # Eight clients train version 1 of one model at once: exactly one wins.
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            answer = http.post("/v1/events", json=as_json(samples.trained(models[0], snapshots=("c0-0",))))
            with lock:
                answers.append(("train", answer.status_code, answer.json()))

    # The snapshot c0-0 that training needs, first.
    with httpx.Client(base_url=server.url, headers=headers) as http:
        first = samples.snapshot(models[0], "c0-0")
        assert http.post("/v1/events", json=as_json(first)).status_code == 201
    run_together([lambda i=i: client_job(i + 1) for i in range(16)] + [lambda i=i: contested_job(i) for i in range(8)])

    snapshots = [a for a in answers if a[0] != "train"]
    assert {status for _, status, _ in snapshots} == {201}, [a for a in snapshots if a[1] != 201][:3]
    trains = sorted(status for event_id, status, _ in answers if event_id == "train")
    assert trains == [201] + [409] * 7
    assert {body["rule"] for event_id, status, body in answers if event_id == "train" and status == 409} == {"version-never-reused"}

    with Ledger.open(log_url) as ledger:
        stored = list(ledger.events())
        assert ledger.verify().ok
    ids = [str(e.event_id) for e in stored]
    assert len(ids) == len(set(ids)) == 1 + 16 * 12 + 1
    assert {i for i, _, _ in snapshots} <= set(ids)
    for model in models:
        sequences = [e.sequence for e in stored if e.model == model]
        assert sequences == list(range(1, len(sequences) + 1))

    # Requests were folded: fewer rounds than requests.
    text = httpx.get(f"{server.url}/metrics").text
    rounds = float(re.search(r"^ledger_round_requests_count (\S+)", text, re.M).group(1))
    requests = float(re.search(r"^ledger_round_requests_sum (\S+)", text, re.M).group(1))
    assert requests >= 1 + 16 * 12 + 8 and rounds < requests


def test_the_same_event_sent_concurrently_is_written_once(server, tokens, log_url):
    event = samples.snapshot("churn", "s1")
    statuses = []

    def send():
        answer = httpx.post(
            f"{server.url}/v1/events", json=as_json(event), headers={"Authorization": f"Bearer {tokens['etl']}"}, timeout=60
        )
        statuses.append((answer.status_code, answer.json()["hash"]))

    run_together([send] * 6)
    assert sorted(s for s, _ in statuses) == [200] * 5 + [201]
    assert len({h for _, h in statuses}) == 1
    with open_log(log_url) as log:
        assert len(list(log.read())) == 1


def test_a_restarted_service_restores_its_state_from_the_log(log_url, tokens, tmp_path):
    db = f"sqlite:///{tmp_path / 'views.db'}"
    headers = {"Authorization": f"Bearer {tokens['writer']}"}
    with Server(log_url, tmp_path / "principals.toml", db_url=db) as first:
        for n in range(5):
            assert httpx.post(f"{first.url}/v1/events", json=as_json(samples.snapshot("churn", f"s{n}")), headers=headers).status_code == 201
    with Server(log_url, tmp_path / "principals.toml", db_url=db) as second:
        again = httpx.post(f"{second.url}/v1/events", json=as_json(samples.trained("churn", snapshots=("s4",))), headers=headers)
        assert again.status_code == 201 and again.json()["sequence"] == 6
        reused = httpx.post(f"{second.url}/v1/events", json=as_json(samples.snapshot("churn", "s0")), headers=headers)
        assert reused.status_code == 409, reused.text
    assert uuid.UUID(again.json()["event_id"])
