"""The verifiable log over HTTP, against the real service (uvicorn on loopback)
on the embedded log and a real Kafka broker: the checkpoints `ledger checkpoint`
signed, inclusion receipts and consistency proofs — checked with the project's
verifiers (`ledger verify --receipt`, ``ledger.proofs.verify_consistency``) and by
recomputing RFC 9162 from the raw records with hashlib alone; hostile queries get
one problem each."""

from __future__ import annotations

import base64
import hashlib

import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.cli import main
from ledger.config import open_log
from ledger.notes import Receipt, SignedCheckpoint
from ledger.proofs import ConsistencyProof, verify_consistency
from tests.integration.service_harness import client
from tests.integration.service_harness import log_url, server, tokens  # noqa: F401 - the service tests' shared fixtures

PROBLEM = "application/problem+json"


# --- RFC 9162 recomputed here, independently of ledger.merkle ---------------------------


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, by the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _node(mth(leaves[:k]), mth(leaves[k:]))


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2."""
    assert index < size
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def consistent(first: int, second: int, path: list[bytes], first_hash: bytes, second_hash: bytes) -> bool:
    """RFC 9162 §2.1.4.2."""
    if first == second:
        return not path and first_hash == second_hash
    if first == 0:
        return not path
    if first & (first - 1) == 0:  # a power of two: the old root is the first node
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    if not path:
        return False
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# --- the world -------------------------------------------------------------------------


def as_json(event) -> dict:
    return {"event_type": event.event_type, **event.model_dump(mode="json", exclude={"sequence", "prev_hash", "recorded_at", "recorded_by", "actor"})}


def post_all(server, tokens, events):
    ids = []
    with client(server, tokens["writer"]) as http:
        for event in events:
            answer = http.post("/v1/events", json=as_json(event))
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["event"]["event_id"])
    return ids


def sign(log_url, key) -> None:
    signed = CliRunner().invoke(main, ["--log", log_url, "checkpoint", "--key", str(key)])
    assert signed.exit_code == 0, signed.output


def partition_leaves(log_url, event_id: str) -> tuple[int, list[bytes]]:
    """The partition holding ``event_id`` and its records' bytes in log order."""
    with open_log(log_url) as log:
        records = list(log.read())
    partition = next(r.position.partition for r in records if event_id.encode() in r.data)
    return partition, [r.data for r in records if r.position.partition == partition]


@pytest.fixture
def keys(tmp_path):
    made = CliRunner().invoke(main, ["keys", "generate", "--name", "ledger.test/models", "--out", str(tmp_path / "log")])
    assert made.exit_code == 0, made.output
    return tmp_path / "log.key", tmp_path / "log.pub"


def test_checkpoints_and_proofs_verify_with_the_cli_and_by_recomputation(server, tokens, log_url, keys, tmp_path):
    key, pub = keys
    with client(server, tokens["reader"]) as http:
        none_yet = http.get("/v1/proofs/inclusion", params={"event_id": "00000000-0000-0000-0000-000000000001"})
        assert none_yet.status_code == 404 and none_yet.headers["content-type"] == PROBLEM

    first = post_all(server, tokens, [samples.snapshot("churn"), samples.trained("churn")])
    sign(log_url, key)
    partition, leaves = partition_leaves(log_url, first[0])
    old_size = len(leaves)
    later = post_all(server, tokens, [samples.evaluated("churn"), samples.snapshot("churn", "s2")])
    sign(log_url, key)
    _, leaves = partition_leaves(log_url, first[0])
    new_size = len(leaves)
    assert new_size == old_size + 2

    with client(server, tokens["reader"]) as http:
        listed = http.get("/v1/checkpoints").json()["checkpoints"]
        mine = next(c for c in listed if c["partition"] == partition)
        assert mine["size"] == new_size and base64.b64decode(mine["root"]) == mth(leaves)

        latest = http.get("/v1/checkpoints/latest", params={"partition": partition})
        assert latest.status_code == 200 and latest.headers["content-type"] == "text/plain; charset=utf-8"
        signed = SignedCheckpoint.parse(latest.text)
        assert signed.checkpoint.origin == f"ledger.test/models/{partition}"
        assert (signed.checkpoint.size, signed.checkpoint.root) == (new_size, mth(leaves))
        assert latest.text == mine["note"]

        # Inclusion, against the latest checkpoint and against the older one.
        for event_id, size in ((first[0], None), (later[1], None), (first[1], old_size)):
            params = {"event_id": event_id, **({"tree_size": size} if size else {})}
            answer = http.get("/v1/proofs/inclusion", params=params)
            assert answer.status_code == 200, answer.text
            receipt_file = tmp_path / "event.receipt"
            receipt_file.write_text(answer.text)
            checked = CliRunner().invoke(main, ["verify", "--receipt", str(receipt_file), "--key", str(pub)])
            assert checked.exit_code == 0 and f"receipt ok: event {event_id} is leaf" in checked.output, checked.output
            receipt = Receipt.parse(answer.text)
            size = size or new_size
            assert receipt.checkpoint.checkpoint.size == size
            assert leaves[receipt.index] == receipt.extra and event_id.encode() in receipt.extra
            recomputed = root_from_inclusion(receipt.index, size, _leaf(receipt.extra), list(receipt.path))
            assert recomputed == mth(leaves[:size]) == receipt.checkpoint.checkpoint.root

        # Consistency from the older checkpoint the auditor kept to the latest.
        saved = signed
        older_text = http.get("/v1/proofs/inclusion", params={"event_id": first[0], "tree_size": old_size}).text
        kept = Receipt.parse(older_text).checkpoint.checkpoint
        assert (kept.size, kept.root) == (old_size, mth(leaves[:old_size]))
        proof = http.get("/v1/proofs/consistency", params={"partition": partition, "old_size": old_size})
        assert proof.status_code == 200 and proof.text.startswith(f"old {old_size}\n"), proof.text
        newer = verify_consistency(proof.text, kept, _verifier(pub))
        assert newer.checkpoint == saved.checkpoint
        parsed = ConsistencyProof.parse(proof.text)
        assert consistent(old_size, new_size, list(parsed.path), mth(leaves[:old_size]), mth(leaves))
        # A proof for another old root is refused by both.
        forged = type(kept)(kept.origin, kept.size, hashlib.sha256(b"forged").digest())
        with pytest.raises(Exception, match="not an append-only extension"):
            verify_consistency(proof.text, forged, _verifier(pub))
        assert not consistent(old_size, new_size, list(parsed.path), forged.root, mth(leaves))
        explicit = http.get("/v1/proofs/consistency", params={"partition": partition, "old_size": 0, "new_size": old_size})
        assert explicit.status_code == 200 and ConsistencyProof.parse(explicit.text).path == ()


def _verifier(pub):
    from ledger import checkpoints as cp

    return cp.load_verifier(str(pub))


def test_hostile_and_impossible_queries_get_one_problem(server, tokens, log_url, keys):
    key, _ = keys
    ids = post_all(server, tokens, [samples.snapshot("churn"), samples.trained("churn")])
    sign(log_url, key)
    partition, leaves = partition_leaves(log_url, ids[0])
    with client(server, tokens["reader"]) as http:
        cases = [
            ("/v1/proofs/inclusion", {"event_id": "00000000-0000-4000-8000-000000000000"}, 404),
            ("/v1/proofs/inclusion", {"event_id": "'; DROP TABLE events; --"}, 422),
            ("/v1/proofs/inclusion", {"event_id": "x" * 10_000}, 422),
            ("/v1/proofs/inclusion", {"event_id": "\u202eabc"}, 422),
            ("/v1/proofs/inclusion", {}, 422),
            ("/v1/proofs/inclusion", {"event_id": ids[0], "tree_size": 0}, 422),
            ("/v1/proofs/inclusion", {"event_id": ids[0], "tree_size": -1}, 422),
            ("/v1/proofs/inclusion", {"event_id": ids[0], "tree_size": "1e3"}, 422),
            ("/v1/proofs/inclusion", {"event_id": ids[0], "tree_size": "9" * 40}, 422),
            ("/v1/proofs/inclusion", {"event_id": ids[0], "tree_size": len(leaves) + 5}, 404),
            ("/v1/proofs/consistency", {"partition": partition, "old_size": len(leaves) + 1}, 422),
            ("/v1/proofs/consistency", {"partition": partition, "old_size": 0, "new_size": 3_000_000}, 404),
            ("/v1/proofs/consistency", {"partition": partition, "old_size": "NaN"}, 422),
            ("/v1/proofs/consistency", {"partition": 999, "old_size": 0}, 404),
            ("/v1/checkpoints/latest", {"partition": 999}, 404),
            ("/v1/checkpoints/latest", {"partition": "0; rm -rf /"}, 422),
        ]
        for path, params, status in cases:
            answer = http.get(path, params=params)
            assert answer.status_code == status, (path, params, answer.text)
            assert answer.headers["content-type"] == PROBLEM and "Traceback" not in answer.text
            assert answer.json()["status"] == status and answer.json()["detail"]
            if params.get("partition") == 999:
                assert "has no partition 999" in answer.json()["detail"], answer.text
    with client(server, None) as http:
        assert http.get("/v1/checkpoints/latest", params={"partition": partition}).status_code == 401
    with client(server, tokens["etl"]) as http:  # no read role
        refused = http.get("/v1/proofs/inclusion", params={"event_id": ids[0]})
        assert refused.status_code == 403 and refused.json()["rule"] == "role"
    if log_url.startswith("kafka"):
        with client(server, tokens["reader"]) as http:
            unnamed = http.get("/v1/checkpoints/latest")
            assert unnamed.status_code == 422 and "give ?partition=" in unnamed.json()["detail"]


def test_no_proof_is_made_from_a_log_that_no_longer_extends_its_checkpoint(tmp_path, tokens, keys):
    import sqlite3

    from tests.integration.service_harness import Server

    key, _ = keys
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with Server(url, tmp_path / "principals.toml", db_url=f"sqlite:///{tmp_path / 'views.db'}") as running:
        ids = post_all(running, tokens, [samples.snapshot("churn"), samples.trained("churn")])
        sign(url, key)
        # An insider rewrites a covered record in place (same length, same id).
        with sqlite3.connect(tmp_path / "log.db") as db:
            data = db.execute("SELECT data FROM events WHERE event_id = ?", (ids[1],)).fetchone()[0]
            assert b"churn1" in data
            db.execute("UPDATE events SET data = ? WHERE event_id = ?", (data.replace(b"churn1", b"forged"), ids[1]))
        with client(running, tokens["reader"]) as http:
            refused = http.get("/v1/proofs/inclusion", params={"event_id": ids[0]})
            assert refused.status_code == 409 and refused.json()["rule"] == "log-inconsistent", refused.text
            assert "not an append-only extension" in refused.json()["detail"]
            assert http.get("/v1/proofs/consistency", params={"old_size": 1}).status_code == 409
