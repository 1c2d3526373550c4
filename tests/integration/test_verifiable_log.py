"""Keys, checkpoints, witnesses and receipts, through the CLI a user types:
what is signed and stored, what is refused (and how loudly), and forged
receipts and checkpoints that must all be refused."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import threading
import time

import pytest
from click.testing import CliRunner

from ledger import checkpoints as cp
from ledger import samples
from ledger.cli import main
from ledger.client import Ledger
from ledger.notes import Receipt, SignedCheckpoint, Signer
from tampering import Rec, build_ledger, middle_forged


def cli(url, *args, env=None):
    return CliRunner().invoke(main, ["--log", url, *args], env=env)


def keypair(where, name, prefix, *flags):
    result = CliRunner().invoke(main, ["keys", "generate", "--name", name, "--out", str(where / prefix), *flags])
    assert result.exit_code == 0, result.output
    return where / f"{prefix}.key", where / f"{prefix}.pub"


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    build_ledger(url)
    log_key, log_pub = keypair(tmp_path, "ledger.test/models", "log")
    return tmp_path, url, log_key, log_pub


def stored_checkpoints(path):
    return [SignedCheckpoint.parse(n) for (n,) in sqlite3.connect(path).execute("SELECT note FROM checkpoints ORDER BY id")]


def first_event_id(path, position):
    return sqlite3.connect(path).execute("SELECT event_id FROM events WHERE position = ?", (position,)).fetchone()[0]


def forge_history(path):
    """Rewrite the log (a covered event forged, its stream relinked) and drop
    the stored checkpoints: the operator's attempt to start a new history."""
    from test_tamper_matrix import read_sqlite, rewrite_sqlite

    original = read_sqlite(path)
    rewrite_sqlite(path, middle_forged(original), {r.hash: r for r in original})


# --------------------------------------------------------------- keys


def test_keys_generate_writes_a_private_key_only_its_owner_reads(tmp_path):
    key, pub = keypair(tmp_path, "ledger.test/models", "log")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    signer = Signer.parse(key.read_text())
    assert str(signer.verifier()) == pub.read_text().strip()
    again = CliRunner().invoke(main, ["keys", "generate", "--name", "x", "--out", str(tmp_path / "log")])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    assert Signer.parse(key.read_text()) == signer
    bad = CliRunner().invoke(main, ["keys", "generate", "--name", "two words", "--out", str(tmp_path / "w")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


# --------------------------------------------------------------- checkpoints


def test_checkpoint_signs_once_per_growth_and_stores_beside_the_events(world):
    where, url, log_key, log_pub = world
    first = cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "a.cp"))
    assert first.exit_code == 0, first.output
    assert "signed ledger.test/models/0@15" in first.output
    again = cli(url, "checkpoint", "--key", str(log_key))
    assert "unchanged ledger.test/models/0@15" in again.output
    assert len(stored_checkpoints(where / "log.db")) == 1
    with Ledger.open(url) as ledger:
        ledger.emit(samples.drift("pump"))
    grown = cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "b.cp"))
    assert "signed ledger.test/models/0@16" in grown.output
    saved = cp.read_checkpoint_file(where / "b.cp")
    assert saved.note.signed_by(Signer.parse(log_key.read_text()).verifier())
    assert [s.checkpoint.size for s in stored_checkpoints(where / "log.db")] == [15, 16]
    # the earlier checkpoint is still one the log extends
    result = cli(url, "verify", "--checkpoint", str(where / "a.cp"), "--key", str(log_pub))
    assert result.exit_code == 0, result.output
    assert "16 record(s); checkpoint ledger.test/models/0@15: consistent" in result.output


def test_a_forged_record_after_the_checkpoint_is_named_by_the_chains(world):
    where, url, log_key, log_pub = world
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "a.cp")).exit_code == 0
    import hashlib

    from ledger import codec

    conn = sqlite3.connect(where / "log.db")
    data = conn.execute("SELECT data FROM events WHERE model='fan' AND sequence=2").fetchone()[0]
    event = codec.decode(data).model_copy(update={"actor": "mallory"})
    forged = codec.encode(event).data
    conn.execute(
        "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
        " VALUES ('fan', 6, ?, ?, ?, ?, ?, 0)",
        ("00000000-0000-4000-8000-00000000000f", event.event_type, forged[2:10], forged, hashlib.sha256(forged).hexdigest()),
    )
    conn.commit()
    conn.close()
    result = cli(url, "verify", "--checkpoint", str(where / "a.cp"), "--key", str(log_pub))
    assert result.exit_code == 1, result.output
    assert "FAIL inserted: fan#2 at 0:16" in result.output
    assert "partition 0: 16 record(s); checkpoint ledger.test/models/0@15: 1 problem(s)" in result.output


def test_a_rewrite_after_the_saved_checkpoint_is_caught_by_the_logs_own_later_one(world):
    where, url, log_key, log_pub = world
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "a.cp")).exit_code == 0
    with Ledger.open(url) as ledger:
        for model in ("pump", "fan", "press"):
            ledger.emit(samples.drift(model))
    assert "signed ledger.test/models/0@18" in cli(url, "checkpoint", "--key", str(log_key)).output
    # Event 17 (after the auditor's checkpoint, covered by the log's own) rewritten
    # with its chain fixed: only the later checkpoint can tell.
    from test_tamper_matrix import read_sqlite, rewrite_sqlite

    from ledger import codec
    from tampering import relink

    original = read_sqlite(where / "log.db")
    forged = list(original)
    forged[16] = Rec(forged[16].model, codec.encode(codec.decode(forged[16].data).model_copy(update={"value": 0.01})).data)
    conn = sqlite3.connect(where / "log.db")
    kept = conn.execute("SELECT origin, size, note, stored_ms FROM checkpoints").fetchall()
    conn.close()
    rewrite_sqlite(where / "log.db", relink(forged, {forged[16].model}), {r.hash: r for r in original})
    conn = sqlite3.connect(where / "log.db")
    conn.executescript(cp.SqliteCheckpoints.SCHEMA)
    conn.executemany("INSERT INTO checkpoints (origin, size, note, stored_ms) VALUES (?, ?, ?, ?)", kept)
    conn.commit()
    conn.close()
    assert cli(url, "verify").exit_code == 0  # the chains see nothing
    result = cli(url, "verify", "--checkpoint", str(where / "a.cp"), "--key", str(log_pub))
    assert result.exit_code == 1, result.output
    assert "FAIL the log's own latest checkpoint ledger.test/models/0@18 is not consistent" in result.output


def test_the_log_never_signs_a_checkpoint_inconsistent_with_one_it_signed(world):
    where, url, log_key, _ = world
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    # Rewrite a covered event but leave the stored checkpoints: signing must refuse.
    import hashlib

    from ledger import codec

    conn = sqlite3.connect(where / "log.db")
    position, data = conn.execute("SELECT position, data FROM events WHERE model='pump' AND sequence=5").fetchone()
    forged = codec.encode(codec.decode(data).model_copy(update={"environment": "staging"})).data
    conn.execute("UPDATE events SET data = ?, hash = ? WHERE position = ?", (forged, hashlib.sha256(forged).hexdigest(), position))
    conn.commit()
    conn.close()
    refused = cli(url, "checkpoint", "--key", str(log_key))
    assert refused.exit_code == 1
    assert "refusing to sign a checkpoint of ledger.test/models/0" in refused.output
    assert refused.stderr.count("refusing to sign") == 1, refused.stderr  # said once
    assert "Traceback" not in refused.output
    assert [s.checkpoint.size for s in stored_checkpoints(where / "log.db")] == [15]


def test_checkpoint_follow_signs_every_n_records_while_appends_go_on(world):
    where, url, log_key, _ = world
    from ledger.config import open_log

    log = open_log(url)
    checkpointer = cp.Checkpointer(log, cp.load_signer(log_key))
    signed, done = [], threading.Event()
    thread = threading.Thread(
        target=checkpointer.follow,
        kwargs={"every": 3, "poll": 0.05, "on_signed": signed.append, "stop": done.is_set},
    )
    thread.start()
    try:
        with Ledger.open(url) as ledger:
            for version in range(2, 5):
                for draft in (samples.trained("pump", version), samples.evaluated("pump", version)):
                    ledger.emit(draft)
        deadline = time.monotonic() + 20
        while (not signed or signed[-1].checkpoint.size < 21) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        thread.join(10)
        log.close()
    sizes = [s.checkpoint.size for s in signed]
    assert sizes[0] == 15 and sizes[-1] == 21
    assert all(b - a >= 3 for a, b in zip(sizes, sizes[1:]))


def test_checkpoint_refuses_bad_keys_and_options(world):
    where, url, _, log_pub = world
    (where / "junk.key").write_text("PRIVATE+KEY+nonsense\n")
    result = cli(url, "checkpoint", "--key", str(where / "junk.key"))
    assert result.exit_code == 2 and "holds no signing key" in result.output
    result = cli(url, "checkpoint", "--key", str(log_pub))
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = cli(url, "checkpoint", "--key", str(where / "log.key"), "--every", "5")
    assert result.exit_code == 2 and "--follow" in result.output


# --------------------------------------------------------------- witnesses


def test_a_witness_cosigns_and_an_auditor_can_require_it(world):
    where, url, log_key, log_pub = world
    w_key, w_pub = keypair(where, "witness.test", "w1", "--witness")
    _, other_pub = keypair(where, "witness2.test", "w2", "--witness")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    result = cli(url, "witness", "--key", str(w_key), "--state", str(where / "w1.json"), "--log-key", str(log_pub))
    assert result.exit_code == 0, result.output
    assert "co-signed ledger.test/models/0@15" in result.output
    state = json.loads((where / "w1.json").read_text())
    assert list(state["cosigned"]) == ["ledger.test/models/0"]
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "latest.cp")).exit_code == 0
    latest = cp.read_checkpoint_file(where / "latest.cp")
    assert len(latest.note.signatures) == 2
    cosignature = base64.b64decode(latest.note.signatures[1].base64)
    assert len(cosignature) == 4 + 8 + 64  # key id, timestamp, Ed25519 signature (tlog-cosignature)

    ok = cli(url, "verify", "--checkpoint", str(where / "latest.cp"), "--key", str(log_pub), "--witness-key", str(w_pub), "--min-witnesses", "1")
    assert ok.exit_code == 0, ok.output
    short = cli(
        url, "verify", "--checkpoint", str(where / "latest.cp"), "--key", str(log_pub),
        "--witness-key", str(w_pub), "--witness-key", str(other_pub), "--min-witnesses", "2",
    )
    assert short.exit_code == 1 and "1 valid witness signature(s), 2 required" in short.output
    # The log's own key does not count as a witness.
    self_witness = cli(url, "verify", "--checkpoint", str(where / "latest.cp"), "--key", str(log_pub), "--witness-key", str(log_pub), "--min-witnesses", "1")
    assert self_witness.exit_code == 2 and "the log's own key is no witness" in self_witness.stderr


def test_a_witness_refuses_a_forked_history_loudly(world, tmp_path):
    where, url, log_key, log_pub = world
    w_key, _ = keypair(where, "witness.test", "w1")
    state = where / "w1.json"
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(state), "--log-key", str(log_pub)).exit_code == 0
    before = state.read_text()
    # The operator rewrites history, drops the stored checkpoints and signs anew.
    forge_history(where / "log.db")
    with Ledger.open(url) as ledger:
        ledger.emit(samples.drift("fan"))
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    alerts = tmp_path / "alerts.jsonl"
    result = cli(url, "witness", "--key", str(w_key), "--state", str(state), "--log-key", str(log_pub), env={"LEDGER_NOTIFY_FILE": str(alerts)})
    assert result.exit_code == 1
    assert "REFUSED witness witness.test refuses checkpoint ledger.test/models/0@16" in result.output
    assert "which this witness co-signed" in result.output
    assert result.stderr.count("refuses checkpoint") == 1, result.stderr  # said once
    assert "Traceback" not in result.output
    assert state.read_text() == before
    alert = json.loads(alerts.read_text().splitlines()[0])
    assert alert["event_type"] == "WitnessRefusal" and "not consistent" in alert["summary"]


def test_a_witness_refuses_a_rolled_back_log(world):
    where, url, log_key, log_pub = world
    w_key, _ = keypair(where, "witness.test", "w1")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub)).exit_code == 0
    conn = sqlite3.connect(where / "log.db")
    conn.execute("DELETE FROM events WHERE position > 12")
    conn.execute("DROP TABLE checkpoints")
    conn.commit()
    conn.close()
    assert "signed ledger.test/models/0@12" in cli(url, "checkpoint", "--key", str(log_key)).output
    result = cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub))
    assert result.exit_code == 1
    assert "refuses checkpoint ledger.test/models/0@12" in result.output and "a log never shrinks" in result.output
    assert result.stderr.count("refuses checkpoint") == 1, result.stderr  # said once


def test_a_damaged_witness_state_is_bad_input_and_left_alone(world):
    where, url, log_key, log_pub = world
    w_key, _ = keypair(where, "witness.test", "w1")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    state = where / "w.json"
    state.write_text("{not json")
    result = cli(url, "witness", "--key", str(w_key), "--state", str(state), "--log-key", str(log_pub))
    assert result.exit_code == 2 and "witness state" in result.output and "Traceback" not in result.output
    assert state.read_text() == "{not json"


def test_a_witness_refuses_a_checkpoint_not_signed_by_the_log(world):
    where, url, log_key, _ = world
    w_key, _ = keypair(where, "witness.test", "w1")
    _, other_pub = keypair(where, "ledger.test/models", "impostor")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    result = cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(other_pub))
    assert result.exit_code == 0  # nothing signed by that key: nothing to co-sign
    assert "co-signed" not in result.output
    assert not (where / "w.json").exists()


# --------------------------------------------------------------- receipts


@pytest.fixture
def receipt(world):
    where, url, log_key, log_pub = world
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    event_id = first_event_id(where / "log.db", 7)
    result = cli(url, "prove", event_id, "--out", str(where / "r.txt"))
    assert result.exit_code == 0, result.output
    return where, url, log_pub, event_id, (where / "r.txt")


def test_a_receipt_verifies_offline_and_names_its_event(receipt):
    where, _url, log_pub, event_id, path = receipt
    text = path.read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert "\nindex 6\n" in text
    result = cli("sqlite:///does-not-exist.db", "verify", "--receipt", str(path), "--key", str(log_pub))
    assert result.exit_code == 0, result.output
    assert f"receipt ok: event {event_id} is leaf 6 of ledger.test/models/0@15" in result.output


def _forge(path, receipt: Receipt, out):
    out.write_text(str(receipt))
    return out


@pytest.mark.parametrize(
    "forgery",
    ["changed middle element", "changed first element", "changed last element", "dropped element", "extra element",
     "wrong index", "another record", "wrong size", "another tree", "another key"],
)
def test_every_forged_receipt_is_refused(receipt, forgery, tmp_path):
    where, url, log_pub, _event_id, path = receipt
    good = Receipt.parse(path.read_text())
    path_ = list(good.path)

    def flip(i):
        p = list(path_)
        p[i] = bytes([p[i][0] ^ 1]) + p[i][1:]
        return tuple(p)

    if forgery == "changed middle element":
        forged = Receipt(good.index, flip(len(path_) // 2), good.checkpoint, good.extra)
    elif forgery == "changed first element":
        forged = Receipt(good.index, flip(0), good.checkpoint, good.extra)
    elif forgery == "changed last element":
        forged = Receipt(good.index, flip(len(path_) - 1), good.checkpoint, good.extra)
    elif forgery == "dropped element":
        forged = Receipt(good.index, tuple(path_[:-1]), good.checkpoint, good.extra)
    elif forgery == "extra element":
        forged = Receipt(good.index, tuple(path_ + [path_[0]]), good.checkpoint, good.extra)
    elif forgery == "wrong index":
        forged = Receipt(good.index + 1, good.path, good.checkpoint, good.extra)
    elif forgery == "another record":
        other = sqlite3.connect(where / "log.db").execute("SELECT data FROM events WHERE position = 8").fetchone()[0]
        forged = Receipt(good.index, good.path, good.checkpoint, bytes(other))
    elif forgery == "wrong size":
        # the checkpoint text edited to claim another size: its signature breaks
        text = str(good.checkpoint).replace("\n15\n", "\n16\n", 1)
        forged = Receipt(good.index, good.path, SignedCheckpoint.parse(text), good.extra)
    elif forgery == "another tree":
        # a genuine receipt of another log signed with the same key
        other_url = f"sqlite:///{tmp_path / 'other.db'}"
        with Ledger.open(other_url) as ledger:
            for draft in samples.lifecycle("pump") + samples.lifecycle("fan"):
                ledger.emit(draft)
        from ledger.config import open_log

        other = cp.Checkpointer(open_log(other_url), cp.load_signer(where / "log.key"))
        other.sign()
        other_receipt = cp.prove(other.log, first_event_id(tmp_path / "other.db", 7))
        forged = Receipt(other_receipt.index, other_receipt.path, good.checkpoint, good.extra)
    else:  # another key
        impostor = Signer.generate("ledger.test/models")
        from ledger import notes

        forged = Receipt(good.index, good.path, notes.sign_checkpoint(good.checkpoint.checkpoint, impostor), good.extra)
    forged_path = _forge(path, forged, tmp_path / "forged.txt")
    result = cli(url, "verify", "--receipt", str(forged_path), "--key", str(log_pub))
    assert result.exit_code == 1, (forgery, result.output)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "content",
    ["", "not a receipt\n", "c2sp.org/tlog-proof@v1\nindex x\n\ncheckpoint\n", "c2sp.org/tlog-proof@v1\nindex 1\n\nno\ncheckpoint\n", "\xff\xfe"],
)
def test_a_malformed_receipt_is_bad_input(receipt, content, tmp_path):
    _where, url, log_pub, _event_id, _path = receipt
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content.encode("latin-1"))
    result = cli(url, "verify", "--receipt", str(bad), "--key", str(log_pub))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_prove_answers_clearly_when_it_cannot(world):
    where, url, log_key, _ = world
    event_id = first_event_id(where / "log.db", 3)
    early = cli(url, "prove", event_id)
    assert early.exit_code == 4 and "not covered by a signed checkpoint yet" in early.output
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    unknown = cli(url, "prove", "00000000-0000-4000-8000-000000000000")
    assert unknown.exit_code == 4 and "no event" in unknown.output
    junk = cli(url, "prove", "not-an-id")
    assert junk.exit_code == 2


# --------------------------------------------------------------- verify's options


def test_verify_checkpoint_refuses_bad_keys_files_and_combinations(world):
    where, url, log_key, log_pub = world
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "a.cp")).exit_code == 0
    _, impostor_pub = keypair(where, "ledger.test/models", "impostor")
    wrong = cli(url, "verify", "--checkpoint", str(where / "a.cp"), "--key", str(impostor_pub))
    assert wrong.exit_code == 1 and "carries no valid signature of the log key" in wrong.output
    edited = where / "edited.cp"
    edited.write_text((where / "a.cp").read_text().replace("\n15\n", "\n14\n"))
    assert cli(url, "verify", "--checkpoint", str(edited), "--key", str(log_pub)).exit_code == 1
    (where / "junk.cp").write_text("hello\n")
    junk = cli(url, "verify", "--checkpoint", str(where / "junk.cp"), "--key", str(log_pub))
    assert junk.exit_code == 2 and "malformed" in junk.output
    assert cli(url, "verify", "--checkpoint", str(where / "a.cp")).exit_code == 2
    assert cli(url, "verify", "--key", str(log_pub)).exit_code == 2
    assert cli(url, "verify", "--checkpoint", str(where / "a.cp"), "--key", "nonsense+key").exit_code == 2
    missing = cli(url, "verify", "--checkpoint", str(where / "nope.cp"), "--key", str(log_pub))
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    # plain verify still works as before
    assert cli(url, "verify").exit_code == 0


def test_a_filtered_export_cannot_be_proved_against_a_checkpoint(world):
    where, url, log_key, log_pub = world
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "a.cp")).exit_code == 0
    assert cli(url, "export", "--out", str(where / "pump.avro"), "--model", "pump").exit_code == 0
    result = cli(url, "verify", "--file", str(where / "pump.avro"), "--checkpoint", str(where / "a.cp"), "--key", str(log_pub))
    assert result.exit_code == 2 and "filtered export" in result.output


def test_an_evidence_file_carries_the_cosigned_checkpoint(world):
    where, url, log_key, log_pub = world
    w_key, w_pub = keypair(where, "witness.test", "w1")
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "a.cp")).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub)).exit_code == 0
    with Ledger.open(url) as ledger:
        ledger.emit(samples.drift("pump"))
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "export", "--out", str(where / "all.avro")).exit_code == 0
    from ledger.evidence import file_checkpoints

    carried = [SignedCheckpoint.parse(t) for t in file_checkpoints(where / "all.avro")]
    assert [c.checkpoint.size for c in carried] == [16]
    result = cli("sqlite:///x.db", "verify", "--file", str(where / "all.avro"), "--checkpoint", str(where / "a.cp"), "--key", str(log_pub))
    assert result.exit_code == 0, result.output
    assert "16 record(s); checkpoint ledger.test/models/0@15: consistent" in result.output


@pytest.mark.kafka
def test_kafka_checkpoints_cover_each_partition_and_witnesses_cosign_there(kafka_log_url, tmp_path):
    from ledger.config import open_log

    with Ledger.open(kafka_log_url) as ledger:
        for model in ("pump", "fan", "press", "mixer", "valve"):
            for draft in samples.lifecycle(model):
                ledger.emit(draft)
    log_key, log_pub = keypair(tmp_path, "ledger.test/kafka", "log")
    w_key, w_pub = keypair(tmp_path, "witness.test", "w")
    result = cli(kafka_log_url, "checkpoint", "--key", str(log_key), "--out", str(tmp_path / "saved"))
    assert result.exit_code == 0, result.output
    with open_log(kafka_log_url) as log:
        sizes = {p: 0 for p in log.partitions()}
        for record in log.read():
            sizes[record.position.partition] += 1
    saved = [tmp_path / f"saved.{p}" for p in sorted(sizes)]
    for p, path in zip(sorted(sizes), saved):
        if sizes[p]:
            assert cp.read_checkpoint_file(path).checkpoint.size == sizes[p]
    present = [str(p) for p in saved if p.exists()]
    args = [a for p in present for a in ("--checkpoint", p)]
    result = cli(kafka_log_url, "witness", "--key", str(w_key), "--state", str(tmp_path / "w.json"), "--log-key", str(log_pub))
    assert result.exit_code == 0, result.output
    assert result.output.count("co-signed") == len(present)
    assert cli(kafka_log_url, "checkpoint", "--key", str(log_key), "--out", str(tmp_path / "latest")).exit_code == 0
    latest = [str(tmp_path / f"latest.{p}") for p in sorted(sizes) if sizes[p]]
    ok = cli(kafka_log_url, "verify", *[a for p in latest for a in ("--checkpoint", p)], "--key", str(log_pub), "--witness-key", str(w_pub), "--min-witnesses", "1")
    assert ok.exit_code == 0, ok.output
    assert ok.output.count(": consistent") == len(latest)
    assert cli(kafka_log_url, "verify", *args, "--key", str(log_pub)).exit_code == 0


# --------------------------------------------------------------- the log's key, not a witness's


def _one_line_error(result, *parts):
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for part in parts:
        assert part in lines[0], lines[0]


def test_a_witness_key_given_as_the_logs_key_is_refused_everywhere(world):
    """A checkpoint or receipt carrying only a witness's cosignature must never
    pass as the log's: a cosignature/v1 key is refused wherever the log's key goes."""
    where, url, log_key, log_pub = world
    w_key, w_pub = keypair(where, "witness.test", "w1", "--witness")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub)).exit_code == 0
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "saved.cp")).exit_code == 0
    saved = (where / "saved.cp").read_text()
    witness_only = where / "witonly.cp"
    witness_only.write_text("".join(line for line in saved.splitlines(keepends=True) if not line.startswith("— ledger.test/models ")))
    assert cp.read_checkpoint_file(witness_only).note.signed_by(cp.load_verifier(w_pub))
    assert cli(url, "prove", first_event_id(where / "log.db", 3), "--out", str(where / "e.receipt")).exit_code == 0
    assert cli(url, "export", "--out", str(where / "all.avro")).exit_code == 0
    refusal = ("--key must be the log's Ed25519 key;", "is a witness key: give it as --witness-key")
    for checkpoint_file in (witness_only, where / "saved.cp"):
        _one_line_error(cli(url, "verify", "--checkpoint", str(checkpoint_file), "--key", str(w_pub)), *refusal)
    _one_line_error(cli(url, "verify", "--receipt", str(where / "e.receipt"), "--key", str(w_pub)), *refusal)
    _one_line_error(cli(url, "verify", "--receipt", str(where / "e.receipt"), "--key", w_pub.read_text().strip()), *refusal)
    _one_line_error(
        cli(url, "verify", "--file", str(where / "all.avro"), "--checkpoint", str(witness_only), "--key", str(w_pub)), *refusal
    )
    _one_line_error(
        cli(url, "witness", "--key", str(w_key), "--state", str(where / "w2.json"), "--log-key", str(w_pub)),
        "--log-key must be the log's Ed25519 key;", "is a witness key",
    )
    before = stored_checkpoints(where / "log.db")
    _one_line_error(cli(url, "checkpoint", "--key", str(w_key)), "--key must be the log's Ed25519 key;", "is a witness key")
    assert stored_checkpoints(where / "log.db") == before
    # With the log's key, the witness-only checkpoint is refused: it carries no log signature.
    refused = cli(url, "verify", "--checkpoint", str(witness_only), "--key", str(log_pub), "--witness-key", str(w_pub))
    assert refused.exit_code == 1 and "carries no valid signature of the log key" in refused.output


def test_a_plain_witness_key_signs_no_checkpoint_of_the_log(world):
    """A witness with a plain Ed25519 key (made without --witness) signs the text as
    the log does; its key names the witness, not the log the checkpoint's origin names."""
    where, url, log_key, _ = world
    w_key, w_pub = keypair(where, "witness.test", "w1")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(where / "log.pub")).exit_code == 0
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "saved.cp")).exit_code == 0
    saved = (where / "saved.cp").read_text()
    witness_only = where / "witonly.cp"
    witness_only.write_text("".join(line for line in saved.splitlines(keepends=True) if not line.startswith("— ledger.test/models ")))
    result = cli(url, "verify", "--checkpoint", str(witness_only), "--key", str(w_pub))
    assert result.exit_code == 1, result.output
    assert "witness.test" in result.output and "ledger.test/models/0" in result.output


def test_the_same_witness_key_twice_is_named_as_such(world):
    where, url, log_key, log_pub = world
    w_key, w_pub = keypair(where, "witness.test", "w1", "--witness")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub)).exit_code == 0
    assert cli(url, "checkpoint", "--key", str(log_key), "--out", str(where / "saved.cp")).exit_code == 0
    result = cli(
        url, "verify", "--checkpoint", str(where / "saved.cp"), "--key", str(log_pub),
        "--witness-key", str(w_pub), "--witness-key", w_pub.read_text().strip(), "--min-witnesses", "2",
    )
    _one_line_error(result, "the same key", "witness.test+", "1 distinct witness key(s)")


def test_a_refusal_is_said_once_on_the_real_commands_stderr(world):
    """Run as a user runs it (a process, logging unconfigured): a refused
    checkpoint or witness says so in one line on stderr, not once per layer."""
    import subprocess
    import sys

    where, url, log_key, log_pub = world
    w_key, _ = keypair(where, "witness.test", "w1", "--witness")
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    assert cli(url, "witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub)).exit_code == 0
    conn = sqlite3.connect(where / "log.db")
    conn.execute("DELETE FROM events WHERE position > 12")
    conn.commit()
    conn.close()

    def run(*args):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
        env = {k: v for k, v in env.items() if not k.startswith("LEDGER_NOTIFY_")}
        return subprocess.run([sys.executable, "-m", "ledger.cli", "--log", url, *args], capture_output=True, text=True, env=env, timeout=120)

    refused = run("checkpoint", "--key", str(log_key))
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines() == [refused.stderr.strip()] and refused.stderr.startswith("error: refusing to sign"), refused.stderr
    conn = sqlite3.connect(where / "log.db")
    conn.execute("DROP TABLE checkpoints")
    conn.commit()
    conn.close()
    assert cli(url, "checkpoint", "--key", str(log_key)).exit_code == 0
    witness = run("witness", "--key", str(w_key), "--state", str(where / "w.json"), "--log-key", str(log_pub))
    assert witness.returncode == 1, witness.stderr
    lines = witness.stderr.splitlines()
    assert len(lines) == 1 and "REFUSED" in lines[0] and "refuses checkpoint ledger.test/models/0@12" in lines[0], witness.stderr
