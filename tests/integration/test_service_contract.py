"""What docs/openapi.json promises is what the running service answers: every answer
below — accepted, duplicate, batch, and each kind of error — is checked against the
schema the document gives for that route, status and media type."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from ledger import samples
from tests.integration.service_harness import client
from tests.integration.service_harness import log_url, server, tokens  # noqa: F401 - the service tests' shared fixtures

DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())


def check(path: str, method: str, answer) -> None:
    """``answer`` has a status the document lists for the route, its media type, and a
    body valid against that response's schema."""
    responses = DOC["paths"][path][method]["responses"]
    status = str(answer.status_code)
    assert status in responses, f"{method.upper()} {path} answered {status}, which the document does not list ({sorted(responses)})"
    media = answer.headers["content-type"].split(";")[0]
    content = responses[status].get("content", {})
    assert media in content, f"{method.upper()} {path} {status} is {media}; the document says {sorted(content)}"
    schema = {**content[media]["schema"], "components": DOC["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(answer.json()), key=str)
    assert not errors, f"{method.upper()} {path} {status}: {errors[0].message} at {list(errors[0].absolute_path)}"


def body(event) -> dict:
    return {"event_type": event.event_type, **event.model_dump(mode="json", exclude={"sequence", "prev_hash", "recorded_at", "actor"})}


def test_append_answers_are_the_documented_ones(server, tokens):
    snapshot = body(samples.snapshot("churn", actor="etl"))
    with client(server, tokens["etl"]) as http:
        check("/v1/events", "post", http.post("/v1/events", json=snapshot))  # 201
        check("/v1/events", "post", http.post("/v1/events", json=snapshot))  # 200: the same event id again
        batch = [body(samples.snapshot("fraud", f"s{i}", actor="etl")) for i in range(2)]
        check("/v1/batches", "post", http.post("/v1/batches", json={"events": batch}))  # 201
        check("/v1/events", "post", http.post("/v1/events", content=b"{not json"))  # 400
        check("/v1/events", "post", http.post("/v1/events", json={"event_type": "nonsense"}))  # 422
        check("/v1/events", "post", http.post("/v1/events", json=body(samples.trained("churn"))))  # 403: etl may not train
        check("/v1/events", "post", http.post("/v1/events", params={"expected_sequence": "x"}, json=snapshot))  # 422
    with client(server, tokens["bob"]) as http:
        check("/v1/events", "post", http.post("/v1/events", json=body(samples.approved("churn"))))  # 409: no such version
    with client(server, "not-a-token") as http:
        check("/v1/events", "post", http.post("/v1/events", json=snapshot))  # 401


def test_read_errors_are_the_documented_ones(server, tokens):
    with client(server, tokens["reader"]) as http:
        check("/v1/models/{model}", "get", http.get(f"/v1/models/m-{uuid.uuid4().hex[:6]}"))
        check("/v1/models/{model}/versions/{version}", "get", http.get("/v1/models/churn/versions/0"))  # 422
        check("/v1/proofs/inclusion", "get", http.get("/v1/proofs/inclusion", params={"event_id": str(uuid.uuid4())}))
        check("/v1/audit", "get", http.get("/v1/audit", params={"since": "not a time"}))
    with client(server, tokens["etl"]) as http:
        check("/v1/models", "get", http.get("/v1/models"))  # 403: etl may not read


@pytest.mark.parametrize("path", sorted(p for p in DOC["paths"] if p.startswith("/v1/")))
def test_every_error_the_document_lists_is_a_problem(path):
    for method, operation in DOC["paths"][path].items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response.get("content", {})) == ["application/problem+json"], (method, path, status)
                assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_unknown_routes_methods_and_query_parameters_are_problems(server, tokens):
    with client(server, tokens["reader"]) as http:
        for answer, status in [
            (http.get("/v1/nothing-here"), 404),
            (http.delete("/v1/models"), 405),
            # A mistyped filter must not answer the whole trail as if nothing were asked.
            (http.get("/v1/audit", params={"modle": "churn"}), 422),
            (http.get("/v1/models", params={"as_of": "2026-01-01"}), 422),
        ]:
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
            assert answer.json()["status"] == status
        typo = http.get("/v1/audit", params={"modle": "churn"}).json()
        assert typo["type"] == "/problems/invalid-request" and "'modle'" in typo["detail"]
        # A malformed read parameter is an invalid request, not an invalid event.
        assert http.get("/v1/models/churn/versions/0").json()["type"] == "/problems/invalid-request"


def test_the_audit_trail_filters_by_version(server, tokens):
    with client(server, tokens["etl"]) as http:
        assert http.post("/v1/events", json=body(samples.snapshot("churn", actor="etl"))).status_code == 201
    with client(server, tokens["alice"]) as http:
        for version in (1, 2):
            assert http.post("/v1/events", json=body(samples.trained("churn", version))).status_code == 201
    with client(server, tokens["reader"]) as http:
        trail = http.get("/v1/audit", params={"model": "churn", "version": 2}).json()["events"]
        assert [(e["event_type"], e["version"]) for e in trail] == [("ModelTrained", 2)]
        check("/v1/audit", "get", http.get("/v1/audit", params={"version": 0}))  # 422
