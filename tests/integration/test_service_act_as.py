"""An act-as request (a pipeline runner naming another actor) through the real
service: the event stores both the actor and the principal that recorded it
(``recorded_by``, event schema v4), four eyes counts both, and auditors see both
(``/v1/audit``, ``ledger audit``, ``ledger show``). Direct log access declares its
actors and never carries ``recorded_by``."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from click.testing import CliRunner

from ledger import codec, samples
from ledger.cli import main
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import InputError
from tests.integration.service_harness import ROLES, client, make_principals
from tests.integration.service_harness import log_url, server  # noqa: F401 - the service tests' shared fixtures

ROLES_HERE = {
    **ROLES,
    "pipeline": ["snapshot", "train", "evaluate", "approve", "act-as", "read"],
}


@pytest.fixture
def tokens(tmp_path):
    return make_principals(tmp_path / "principals.toml", ROLES_HERE)


def draft(event, actor: str | None = None) -> dict:
    body = event.model_dump(mode="json", exclude={"sequence", "prev_hash", "recorded_at", "recorded_by", "actor"})
    return {"event_type": event.event_type, **body, **({"actor": actor} if actor else {})}


def stored(log_url) -> list:
    with open_log(log_url) as log:
        return [codec.decode(r.data) for r in log.read()]


def post(server, token, body):
    with client(server, token) as http:
        return http.post("/v1/events", json=body)


def test_the_event_stores_the_actor_and_the_principal_that_recorded_it(server, tokens, log_url, tmp_path):
    pipeline = tokens["pipeline"]
    assert post(server, pipeline, draft(samples.snapshot("churn"))).status_code == 201
    trained = post(server, pipeline, draft(samples.trained("churn"), actor="alice"))
    assert trained.status_code == 201, trained.text
    assert trained.json()["event"]["actor"] == "alice" and trained.json()["event"]["recorded_by"] == "pipeline"
    assert post(server, tokens["ci"], draft(samples.evaluated("churn"))).status_code == 201

    # The runner recorded alice's training: naming bob does not make it a second pair of eyes.
    as_bob = post(server, pipeline, draft(samples.approved("churn"), actor="bob"))
    assert as_bob.status_code == 409 and as_bob.json()["rule"] == "four-eyes", as_bob.text
    assert "'pipeline' recorded the training of churn@1 (as 'alice')" in as_bob.json()["detail"]
    itself = post(server, pipeline, draft(samples.approved("churn")))
    assert itself.status_code == 409 and itself.json()["rule"] == "four-eyes"
    # A client cannot claim who recorded it: that is the service's to say.
    claimed = post(server, tokens["bob"], {**draft(samples.approved("churn")), "recorded_by": "someone"})
    assert claimed.status_code == 422 and "'recorded_by' is set by the ledger" in claimed.json()["detail"]
    approved = post(server, tokens["bob"], draft(samples.approved("churn")))
    assert approved.status_code == 201, approved.text

    events = stored(log_url)
    assert [(e.event_type, e.actor, e.recorded_by) for e in events] == [
        ("DataSnapshotted", "pipeline", None),
        ("ModelTrained", "alice", "pipeline"),
        ("ModelEvaluated", "ci", None),
        ("ModelApproved", "bob", None),
    ]

    with client(server, tokens["reader"]) as http:
        trail = http.get("/v1/audit", params={"model": "churn"}).json()["events"]
        assert [(e["actor"], e["recorded_by"]) for e in trail] == [
            ("pipeline", None), ("alice", "pipeline"), ("ci", None), ("bob", None)
        ]
        # What the runner did includes what it recorded on others' behalf.
        mine = http.get("/v1/audit", params={"actor": "pipeline"}).json()["events"]
        assert [e["event_type"] for e in mine] == ["DataSnapshotted", "ModelTrained"]
        version = http.get("/v1/models/churn/versions/1").json()
        assert (version["trained_by"], version["trained_recorded_by"]) == ("alice", "pipeline")

    # The CLI reads the same log into its own views.
    views = f"sqlite:///{tmp_path / 'cli-views.db'}"
    audit = CliRunner().invoke(main, ["--log", log_url, "--db", views, "audit", "--model", "churn", "--format", "csv"])
    assert audit.exit_code == 0, audit.output
    rows = list(csv.DictReader(io.StringIO(audit.stdout)))
    assert [(r["event_type"], r["actor"], r["recorded_by"]) for r in rows] == [
        ("DataSnapshotted", "pipeline", ""), ("ModelTrained", "alice", "pipeline"),
        ("ModelEvaluated", "ci", ""), ("ModelApproved", "bob", ""),
    ]
    table = CliRunner().invoke(main, ["--log", log_url, "--db", views, "audit", "--model", "churn"])
    assert table.exit_code == 0 and "RECORDED_BY" in table.stdout.splitlines()[0]
    assert re.search(r"ModelTrained\s+alice\s+pipeline\s+ok", table.stdout), table.stdout
    shown = CliRunner().invoke(main, ["--log", log_url, "--db", views, "show", "churn@1"])
    assert shown.exit_code == 0, shown.output
    assert "by alice (recorded by pipeline)" in shown.stdout
    html = tmp_path / "report.html"
    made = CliRunner().invoke(main, ["--log", log_url, "--db", views, "report", "--out", str(html)])
    assert made.exit_code == 0, made.output
    assert "<td>alice (recorded by pipeline)</td>" in html.read_text()


def test_the_version_answer_is_the_document_ledger_show_prints(server, tokens, log_url, tmp_path):
    # The runner records ci's evaluation and carol's approval of alice's training:
    # both carry recorded_by, over HTTP as in `ledger show churn@1 --json`, key for key.
    pipeline = tokens["pipeline"]
    assert post(server, pipeline, draft(samples.snapshot("churn"))).status_code == 201
    assert post(server, tokens["alice"], draft(samples.trained("churn"))).status_code == 201
    evaluated = post(server, pipeline, draft(samples.evaluated("churn"), actor="ci"))
    assert evaluated.status_code == 201, evaluated.text
    approved = post(server, pipeline, draft(samples.approved("churn"), actor="carol"))
    assert approved.status_code == 201, approved.text
    with client(server, tokens["reader"]) as http:
        answer = http.get("/v1/models/churn/versions/1")
    assert answer.status_code == 200, answer.text
    version = answer.json()
    assert [(r["decision"], r["by"], r["recorded_by"]) for r in version["reviews"]] == [("approved", "carol", "pipeline")]
    assert [(e["evaluated_by"], e["recorded_by"]) for e in version["evaluations"]] == [("ci", "pipeline")]

    views = f"sqlite:///{tmp_path / 'cli-views.db'}"
    shown = CliRunner().invoke(main, ["--log", log_url, "--db", views, "show", "churn@1", "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    # The service does not re-read the whole log on a read: its mark says so.
    assert (document["verified"], version["verified"]) == ("ok", "unchecked")
    assert {**version, "verified": "ok"} == document


def test_a_runner_that_trained_cannot_approve_by_naming_someone_else(server, tokens, log_url):
    pipeline = tokens["pipeline"]
    for event in (samples.snapshot("churn"), samples.trained("churn"), samples.evaluated("churn")):
        assert post(server, pipeline, draft(event)).status_code == 201
    for actor in ("bob", "BOB", "carol"):
        refused = post(server, pipeline, draft(samples.approved("churn"), actor=actor))
        assert refused.status_code == 409 and refused.json()["rule"] == "four-eyes", refused.text
        assert f"'pipeline' trained churn@1 and cannot also approve it, not even as {actor!r}" in refused.json()["detail"]
    rejected = post(server, pipeline, {**draft(samples.approved("churn"), actor="bob"), "event_type": "reject"})
    assert rejected.status_code == 409 and rejected.json()["rule"] == "four-eyes"
    assert len(stored(log_url)) == 3
    # bob, authenticated as himself, may.
    assert post(server, tokens["bob"], draft(samples.approved("churn"))).status_code == 201
    assert [(e.actor, e.recorded_by) for e in stored(log_url)][-1] == ("bob", None)


def test_direct_log_access_never_records_a_recorded_by(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    given = {**draft(samples.snapshot("churn")), "recorded_by": "pipeline"}
    del given["event_type"]
    emitted = CliRunner().invoke(main, ["--log", url, "emit", "snapshot", "--actor", "etl", "--json", "-"], input=json.dumps(given))
    assert emitted.exit_code == 2 and emitted.output.count("\n") == 1, emitted.output
    assert "'recorded_by' is set by the ledger service" in emitted.output
    with Ledger.open(url) as ledger:
        with pytest.raises(InputError, match="recorded_by is set by the ledger service"):
            ledger.emit(samples.snapshot("churn").model_copy(update={"recorded_by": "pipeline"}))
        ledger.emit(samples.snapshot("churn"))
    del given["recorded_by"]
    ok = CliRunner().invoke(main, ["--log", url, "emit", "snapshot", "--actor", "etl", "--json", "-"], input=json.dumps({**given, "snapshot_id": "s2"}))
    assert ok.exit_code == 0, ok.output
    assert [(e.actor, e.recorded_by) for e in stored(url)] == [("etl", None), ("etl", None)]
