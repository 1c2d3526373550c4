"""The Python client and `ledger emit` speaking to the real service when
LEDGER_URL (and LEDGER_TOKEN) are set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ledger import samples
from ledger.client import Ledger
from ledger.config import open_log
from ledger.errors import NotAuthorized, RuleViolation
from ledger.http_client import HttpLedger
from tests.integration.service_harness import ROOT, Server, free_port, make_principals


from tests.integration.service_harness import log_url, server, tokens  # noqa: E402,F401 - the service tests' shared fixtures


def test_ledger_open_speaks_to_the_service_when_ledger_url_is_set(server, tokens, log_url, monkeypatch):
    monkeypatch.setenv("LEDGER_URL", server.url)
    monkeypatch.setenv("LEDGER_TOKEN", tokens["writer"])
    with Ledger.open() as ledger:
        assert isinstance(ledger, HttpLedger)
        first = ledger.emit(samples.snapshot("churn", actor="writer"))
        assert first.event.sequence == 1 and not first.duplicate
        batch = ledger.emit_many([samples.trained("churn", actor="writer"), samples.evaluated("churn", actor="writer")])
        assert [a.event.sequence for a in batch] == [2, 3]
        assert batch[1].event.prev_hash == batch[0].hash
        with pytest.raises(NotAuthorized):
            ledger.emit(samples.approved("churn", actor="writer"))
        with pytest.raises(RuleViolation) as refused:
            ledger.emit(samples.trained("churn", actor="writer"))
        assert refused.value.rule == "version-never-reused"
    with Ledger.open(log_url) as direct:
        assert [e.actor for e in direct.events()] == ["writer"] * 3
        assert direct.verify().ok


def test_the_client_retries_until_the_service_answers_and_writes_once(log_url, tokens, tmp_path):
    port = free_port()
    client = HttpLedger(f"http://127.0.0.1:{port}", tokens["etl"], retry_for=90)
    event = samples.snapshot("churn", actor="etl")
    answers = []
    sender = threading.Thread(target=lambda: answers.append(client.emit(event)))
    sender.start()  # nothing listens yet: connection refused, retried
    time.sleep(1.0)
    with Server(log_url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'views.db'}", port=port) as running:
        sender.join(90)
        assert answers and answers[0].event.sequence == 1
        again = client.emit(event)  # a retry after an answer lost on the way
        assert again.duplicate and again.hash == answers[0].hash
    with Server(log_url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'views.db'}", port=port):
        assert client.emit(event).duplicate  # and after a restart of the service
    with open_log(log_url) as log:
        assert len(list(log.read())) == 1


def fresh(fields: dict, **changes) -> dict:
    """Another action: the same fields without the event id, changed."""
    return {k: v for k, v in fields.items() if k != "event_id"} | changes


def emit(server, token, kind, actor, fields):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_URL": server.url, "LEDGER_TOKEN": token}
    env.pop("LEDGER_LOG", None)
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", "emit", kind, "--actor", actor, "--json", "-", "--brief"],
        input=json.dumps(fields), capture_output=True, text=True, env=env, timeout=120,
    )


def test_cli_emit_through_the_service(server, tokens, log_url, tmp_path):
    snapshot = samples.snapshot("churn").model_dump(mode="json", exclude={"actor", "sequence", "prev_hash", "recorded_at"})
    ok = emit(server, tokens["etl"], "snapshot", "etl", snapshot)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("accepted DataSnapshotted churn #1 by etl")
    again = emit(server, tokens["etl"], "snapshot", "etl", snapshot)
    assert again.returncode == 0 and "(already recorded)" in again.stdout
    spoofed = emit(server, tokens["etl"], "snapshot", "alice", fresh(snapshot, snapshot_id="s2"))
    assert spoofed.returncode == 2, spoofed.stderr
    assert spoofed.stderr.count("\n") == 1 and "act-as" in spoofed.stderr
    train = samples.trained("churn", snapshots=("nope",)).model_dump(mode="json", exclude={"actor", "sequence", "prev_hash", "recorded_at"})
    refused = emit(server, tokens["alice"], "train", "alice", train)
    assert refused.returncode == 1 and "snapshot-exists" in refused.stderr and "Traceback" not in refused.stderr
    forged = emit(server, "ldg_forged", "snapshot", "etl", fresh(snapshot, snapshot_id="s3"))
    assert forged.returncode == 2 and "unknown or revoked token" in forged.stderr
    with open_log(log_url) as log:
        assert len(list(log.read())) == 1
