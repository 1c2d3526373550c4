"""The ledger service as its clients use it: the real server (uvicorn on a
loopback port, its own process) over the embedded log and a real Kafka broker."""

from __future__ import annotations

import json
import time
import tomllib
import uuid

import httpx
import pytest
import tomli_w

from ledger import samples
from ledger.config import open_log
from ledger.errors import InputError
from ledger.service.principals import add_principal, new_token, token_hash
from tests.integration.service_harness import Server, client, make_principals

PROBLEM = "application/problem+json"


def as_json(event, *, actor: bool = False) -> dict:
    body = event.model_dump(mode="json", exclude={"sequence", "prev_hash", "recorded_at", "actor"} if not actor else {"sequence", "prev_hash", "recorded_at"})
    return {"event_type": event.event_type, **body}


from tests.integration.service_harness import log_url, server, tokens  # noqa: E402,F401 - the service tests' shared fixtures


def raw(log_url) -> list[bytes]:
    with open_log(log_url) as log:
        return [r.data for r in log.read()]


def lifecycle_until_evaluated(server, tokens, model="churn"):
    steps = [
        ("etl", samples.snapshot(model, actor="etl")),
        ("alice", samples.trained(model, actor="alice")),
        ("ci", samples.evaluated(model, actor="ci")),
    ]
    for who, event in steps:
        with client(server, tokens[who]) as http:
            answer = http.post("/v1/events", json=as_json(event))
            assert answer.status_code == 201, answer.text


def test_lifecycle_is_recorded_with_principals_as_actors_and_read_back(server, tokens):
    lifecycle_until_evaluated(server, tokens)
    with client(server, tokens["reader"]) as http:
        pending = http.get("/v1/decisions/pending").json()["pending"]
        assert [(p["model"], p["version"]) for p in pending] == [("churn", 1)]
    with client(server, tokens["bob"]) as http:
        approved = http.post("/v1/events", json={"event_type": "approve", "model": "churn", "version": 1, "reason": "ok"})
        assert approved.status_code == 201, approved.text
        assert approved.json()["event"]["actor"] == "bob"
        assert approved.json()["sequence"] == 4
    with client(server, tokens["deployer"]) as http:
        deployed = http.post("/v1/events", json=as_json(samples.deployed("churn")))
        assert deployed.status_code == 201, deployed.text
    with client(server, tokens["reader"]) as http:
        models = http.get("/v1/models").json()["models"]
        assert models[0]["model"] == "churn" and models[0]["deployed"] == {"production": 1}
        assert http.get("/v1/decisions/pending").json()["pending"] == []
        trail = http.get("/v1/audit", params={"model": "churn"}).json()["events"]
        assert [e["actor"] for e in trail] == ["etl", "alice", "ci", "bob", "deployer"]
        version = http.get("/v1/models/churn/versions/1").json()
        assert version["status"] == "deployed"
        lineage = http.get("/v1/lineage", params={"node": "churn@1"}).json()
        assert any(n["node_id"].startswith("snapshot:") for n in lineage["nodes"])
        missing = http.get("/v1/models/nope/versions/1")
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_a_retry_with_the_same_event_id_is_answered_as_a_duplicate_and_written_once(server, tokens, log_url):
    event = samples.snapshot("churn", actor="etl")
    with client(server, tokens["etl"]) as http:
        first = http.post("/v1/events", json=as_json(event))
        again = http.post("/v1/events", json=as_json(event))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["hash"] == first.json()["hash"]
    assert len(raw(log_url)) == 1


def test_a_batch_is_atomic(server, tokens, log_url):
    with client(server, tokens["writer"]) as http:
        bad = http.post("/v1/batches", json={"events": [
            as_json(samples.snapshot("churn")), as_json(samples.trained("churn", snapshots=("missing",))),
        ]})
        assert bad.status_code == 409 and bad.json()["rule"] == "snapshot-exists", bad.text
        assert raw(log_url) == []
        good = http.post("/v1/batches", json={"events": [as_json(samples.snapshot("churn")), as_json(samples.trained("churn"))]})
        assert good.status_code == 201, good.text
        assert [a["sequence"] for a in good.json()["accepted"]] == [1, 2]
        stale = http.post("/v1/batches", json={"events": [as_json(samples.snapshot("churn", "s2"))], "expected_sequence": 1})
        assert stale.status_code == 409 and stale.json()["rule"] == "concurrent-write"
    assert len(raw(log_url)) == 2


def test_who_may_record_what(server, tokens, log_url):
    snapshot = as_json(samples.snapshot("churn"))
    assert httpx.post(f"{server.url}/v1/events", json=snapshot).status_code == 401
    unknown = httpx.post(f"{server.url}/v1/events", json=snapshot, headers={"Authorization": "Bearer ldg_forged"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"].startswith("Bearer")
    with client(server, tokens["alice"]) as http:  # may train, not snapshot
        refused = http.post("/v1/events", json=snapshot)
        assert refused.status_code == 403 and refused.json()["rule"] == "role"
    with client(server, tokens["etl"]) as http:  # may not name another actor
        spoofed = http.post("/v1/events", json={**snapshot, "actor": "alice"})
        assert spoofed.status_code == 403 and spoofed.json()["rule"] == "actor"
        assert http.post("/v1/events", json=snapshot).status_code == 201
    with client(server, tokens["runner"]) as http:  # a pipeline runner acts on behalf of others
        trained = http.post("/v1/events", json={**as_json(samples.trained("churn")), "actor": "alice"})
        assert trained.status_code == 201, trained.text
        assert trained.json()["event"]["actor"] == "alice" and trained.json()["recorded_by"] == "runner"
    with client(server, tokens["deployer"]) as http:  # deploy:production only
        staging = http.post("/v1/events", json=as_json(samples.deployed("churn", environment="staging")))
        assert staging.status_code == 403 and "deploy:staging" in staging.json()["detail"]
    with client(server, tokens["etl"]) as http:  # no read role
        assert http.get("/v1/models").status_code == 403
    assert len(raw(log_url)) == 2


def test_four_eyes_compares_principals(server, tokens, tmp_path):
    token = add_principal(tmp_path / "principals.toml", "solo", ["train", "evaluate", "approve", "snapshot"])
    time.sleep(1.2)  # the service re-reads the file at most once a second
    with client(server, token) as http:
        for event in (samples.snapshot("churn"), samples.trained("churn"), samples.evaluated("churn")):
            assert http.post("/v1/events", json=as_json(event)).status_code == 201
        own = http.post("/v1/events", json={"event_type": "approve", "model": "churn", "version": 1})
        assert own.status_code == 409 and own.json()["rule"] == "four-eyes"
        claimed = http.post("/v1/events", json={"event_type": "approve", "model": "churn", "version": 1, "actor": "bob"})
        assert claimed.status_code == 403
    # `principals add` refuses another principal whose name is the same identity
    # (ledger.identity); one written into the file by hand is still one person.
    path = tmp_path / "principals.toml"
    with pytest.raises(InputError, match="the same person as 'solo'"):
        add_principal(path, "SOLO", ["approve"])
    data = tomllib.loads(path.read_text())
    alias = new_token()
    data["principals"]["SOLO"] = {"token_sha256": token_hash(alias), "roles": ["approve"]}
    path.write_bytes(tomli_w.dumps(data).encode())
    time.sleep(1.2)
    with client(server, alias) as http:
        again = http.post("/v1/events", json={"event_type": "approve", "model": "churn", "version": 1})
        assert again.status_code == 409 and again.json()["rule"] == "four-eyes", again.text
        assert "the same person as 'solo'" in again.json()["detail"]


def test_bad_input_gets_one_problem_and_changes_nothing(server, tokens, log_url):
    url = f"{server.url}/v1/events"
    headers = {"Authorization": f"Bearer {tokens['writer']}", "Content-Type": "application/json"}
    cases = [
        (b"{not json", 400),
        (b'{"event_type": "snapshot", "row_count": NaN}', 400),
        (b'{"event_type": "snapshot", "model": "churn", "model": "fraud"}', 400),  # which one? neither
        (b'{"event_type": "snapshot", "model": "churn", "row_count": 1e999}', 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (json.dumps({"event_type": "promote", "model": "churn"}).encode(), 422),
        (json.dumps({**as_json(samples.snapshot("churn")), "row_count": -1}).encode(), 422),
        (json.dumps({**as_json(samples.snapshot("churn")), "sequence": 7}).encode(), 422),
        (json.dumps({**as_json(samples.snapshot("churn")), "model": "churn\u0000x"}).encode(), 422),
        (json.dumps({**as_json(samples.snapshot("churn")), "uri": "x" * 9_000_000}).encode(), 400),
        (json.dumps({**as_json(samples.snapshot("churn")), "occurred_at": "9999-99-99"}).encode(), 422),
        (json.dumps({**as_json(samples.snapshot("churn")), "occurred_at": "2999-01-01T00:00:00Z"}).encode(), 422),
    ]
    for body, status in cases:
        answer = httpx.post(url, content=body, headers=headers, timeout=30)
        assert answer.status_code == status, (body[:60], answer.text)
        problem = answer.json()
        assert answer.headers["content-type"] == PROBLEM
        assert set(problem) >= {"type", "title", "status", "detail", "rule"} and problem["status"] == status
        assert "Traceback" not in answer.text
    assert raw(log_url) == []


def test_metrics_count_accepted_and_refused_by_type_and_rule(server, tokens):
    with client(server, tokens["bob"]) as http:
        http.post("/v1/events", json={"event_type": "approve", "model": "churn", "version": 1})
    with client(server, tokens["etl"]) as http:
        http.post("/v1/events", json=as_json(samples.snapshot("churn")))
    text = httpx.get(f"{server.url}/metrics").text
    assert 'ledger_events_accepted_total{event_type="DataSnapshotted"} 1.0' in text
    assert 'ledger_events_rejected_total{event_type="ModelApproved",rule="version-exists"} 1.0' in text
    assert "ledger_append_seconds_bucket" in text and "ledger_round_requests_bucket" in text


def test_principals_file_is_reloaded_and_a_removed_principal_is_refused(server, tokens, tmp_path):
    path = tmp_path / "principals.toml"
    fresh = add_principal(path, "late", ["read"])
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {fresh}"}).status_code != 200:
        assert time.monotonic() < deadline, "the new principal was not picked up"
        time.sleep(0.2)
    rotated = add_principal(path, "late", ["read"], replace=True)
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {fresh}"}).status_code != 401:
        assert time.monotonic() < deadline, "the old token still works after rotation"
        time.sleep(0.2)
    assert httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200


def test_health_and_readiness(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["status"] == "ready"


def test_the_service_is_not_ready_while_the_log_is_unreachable(tmp_path, tokens):
    # A broker address nothing listens on: the service starts, answers health, and
    # refuses appends with 503 instead of hanging.
    from tests.integration.service_harness import free_port

    url = f"kafka://127.0.0.1:{free_port()}/t?timeout_ms=1000"
    server = Server(url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'views.db'}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        answer = httpx.post(
            f"{server.url}/v1/events", json=as_json(samples.snapshot("churn")), headers={"Authorization": f"Bearer {tokens['etl']}"}
        )
        assert answer.status_code == 503 and answer.headers["content-type"] == PROBLEM
    finally:
        server.stop()


def test_event_ids_given_by_the_client_are_kept(server, tokens):
    event_id = str(uuid.uuid4())
    with client(server, tokens["etl"]) as http:
        answer = http.post("/v1/events", json={**as_json(samples.snapshot("churn")), "event_id": event_id})
    assert answer.json()["event_id"] == event_id
