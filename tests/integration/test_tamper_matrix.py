"""The tamper matrix: a ledger of three models, a checkpoint an auditor saved,
then each kind of rewrite an insider with write access could make — on the
embedded log's file, on a Kafka log, and on an evidence file.

Without the checkpoint, `ledger verify` catches only what the per-model chains
can see (asserted here, so the README's table is what the tests show). With the
auditor's checkpoint and the log's public key, every kind is caught: exit 1 and a
FAIL line naming what was found.

Kafka records cannot be edited or deleted in place; a rewritten Kafka log is a
new topic holding the forged record set (what an operator with admin rights
would build and point consumers at). The auditor verifies that topic against
the checkpoint they saved from the original: its origin names the log by its
key, so it applies to whatever topic claims to be that log. Forgeries a raw
producer appends to the live topic are tested apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3

import fastavro
import pytest
from click.testing import CliRunner

from ledger import codec, evidence
from ledger.cli import main
from ledger.errors import DecodeError
from ledger.notes import Signer
from tampering import TAMPERINGS, Rec, build_ledger

SHRINKS = {"last event deleted", "whole stream deleted", "log truncated"}

CAUGHT_WITHOUT_CHECKPOINT = {"byte flip"}
"""The only kind the chains alone catch once the forger also fixes stored
hashes, links and (for files) the recorded chain heads."""


def cli(url: str, *args: str):
    return CliRunner().invoke(main, ["--log", url, *args])


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    where = tmp_path_factory.mktemp("keys")
    signer = Signer.generate("ledger.test/models")
    (where / "log.key").write_text(str(signer) + "\n")
    (where / "log.pub").write_text(str(signer.verifier()) + "\n")
    return where / "log.key", where / "log.pub"


def expect_caught(result, kind: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL ")]
    assert fails, result.output
    if kind in SHRINKS:
        assert "records were deleted or the log was truncated" in fails[0]
    else:
        assert "not an append-only extension of checkpoint" in fails[0]
        assert "no longer hash to its root" in fails[0]


# --------------------------------------------------------------- the embedded log


def read_sqlite(path) -> list[Rec]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT model, data, hash FROM events ORDER BY position").fetchall()
    conn.close()
    return [Rec(m, bytes(d), h) for m, d, h in rows]


def rewrite_sqlite(path, recs: list[Rec], originals: dict[str, Rec]) -> None:
    """Replace the events table's rows, and drop the stored checkpoints (the
    forger covers their tracks: only the auditor's copy is left)."""
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM events")
    conn.execute("DROP TABLE IF EXISTS checkpoints")
    for position, rec in enumerate(recs, start=1):
        source = rec if rec.recorded_hash is None else originals.get(rec.recorded_hash, rec)
        event = codec.decode(source.data)
        conn.execute(
            "INSERT INTO events (position, model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (position, rec.model, event.sequence, str(event.event_id), event.event_type, rec.data[2:10], rec.data, rec.hash),
        )
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def sqlite_original(tmp_path_factory, keys):
    where = tmp_path_factory.mktemp("sqlite")
    url = f"sqlite:///{where / 'log.db'}"
    build_ledger(url)
    key, _pub = keys
    result = cli(url, "checkpoint", "--key", str(key), "--out", str(where / "saved.checkpoint"))
    assert result.exit_code == 0, result.output
    result = cli(url, "export", "--out", str(where / "evidence.avro"))
    assert result.exit_code == 0, result.output
    return where


@pytest.fixture
def sqlite_copy(sqlite_original, tmp_path):
    for name in ("log.db", "saved.checkpoint", "evidence.avro"):
        shutil.copy(sqlite_original / name, tmp_path / name)
    return tmp_path


def test_the_intact_embedded_log_is_consistent_with_the_checkpoint(sqlite_copy, keys):
    url = f"sqlite:///{sqlite_copy / 'log.db'}"
    result = cli(url, "verify", "--checkpoint", str(sqlite_copy / "saved.checkpoint"), "--key", str(keys[1]))
    assert result.exit_code == 0, result.output
    assert "partition 0: 15 record(s); checkpoint ledger.test/models/0@15: consistent" in result.output


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_every_rewrite_of_the_embedded_log_is_caught_with_the_checkpoint(sqlite_copy, keys, kind):
    path = sqlite_copy / "log.db"
    url = f"sqlite:///{path}"
    original = read_sqlite(path)
    rewrite_sqlite(path, TAMPERINGS[kind](original), {r.hash: r for r in original})

    without = cli(url, "verify")
    assert without.exit_code == (1 if kind in CAUGHT_WITHOUT_CHECKPOINT else 0), without.output

    result = cli(url, "verify", "--checkpoint", str(sqlite_copy / "saved.checkpoint"), "--key", str(keys[1]))
    expect_caught(result, kind)


# --------------------------------------------------------------- evidence files


def read_evidence(path):
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle, return_record_name=True, return_record_name_override=True)
        schema, metadata = reader.writer_schema, dict(reader.metadata)
        rows = list(reader)
    return schema, metadata, rows


def rewrite_evidence(path, recs: list[Rec], schema, metadata, rows) -> None:
    """Rewrite the file's rows and adjust its metadata to match (chain heads,
    tree sizes); the carried checkpoints are dropped (they would not match)."""
    by_hash = {row["hash"]: row for row in rows}
    new_rows, chains = [], {}
    for offset, rec in enumerate(recs, start=1):
        try:
            event_type, record = codec.read_record(rec.data)
            event = codec.decode(rec.data)
            sequence, copy = event.sequence, (f"io.mlledger.events.{event_type}", record)
            prev_hash = event.prev_hash
        except DecodeError:
            old = by_hash[rec.recorded_hash]
            event_type, sequence, copy, prev_hash = old["event_type"], old["sequence"], old["event"], None
        chain = chains.setdefault(rec.model, {"anchor_sequence": sequence - 1, "anchor_hash": prev_hash})
        chain["head_sequence"], chain["head_hash"] = sequence, rec.hash
        new_rows.append(
            {
                "partition": 0, "offset": offset, "model": rec.model, "sequence": sequence,
                "event_type": event_type, "hash": rec.hash, "data": rec.data, "event": copy,
            }
        )
    metadata = dict(metadata)
    metadata["ledger.chains"] = json.dumps(chains, sort_keys=True)
    metadata["ledger.tree"] = json.dumps({"complete": True, "partitions": {"0": {"leaves": len(recs), "absent": {}}}})
    metadata["ledger.checkpoints"] = "[]"
    for key in ("avro.schema", "avro.codec", "ledger.digest"):
        metadata.pop(key, None)
    parsed = fastavro.parse_schema(schema)
    # Who rewrites the file on purpose recomputes its digest too (it is no
    # signature): only the checkpoint can catch what follows.
    header = io.BytesIO()
    fastavro.writer(header, parsed, [], codec="deflate", metadata=dict(metadata))
    header.seek(0)
    index = [(r["partition"], r["offset"], r["model"], r["sequence"], r["event_type"], r["hash"]) for r in new_rows]
    metadata["ledger.digest"] = evidence._digest(fastavro.reader(header).metadata, index)
    buffer = io.BytesIO()
    fastavro.writer(buffer, parsed, new_rows, codec="deflate", metadata=metadata)
    path.write_bytes(buffer.getvalue())


def test_an_intact_evidence_file_is_consistent_with_the_checkpoint(sqlite_copy, keys):
    result = cli(
        "sqlite:///nowhere.db", "verify", "--file", str(sqlite_copy / "evidence.avro"),
        "--checkpoint", str(sqlite_copy / "saved.checkpoint"), "--key", str(keys[1]),
    )
    assert result.exit_code == 0, result.output
    assert "checkpoint ledger.test/models/0@15: consistent" in result.output


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_every_rewrite_of_an_evidence_file_is_caught_with_the_checkpoint(sqlite_copy, keys, kind):
    path = sqlite_copy / "evidence.avro"
    schema, metadata, rows = read_evidence(path)
    original = [Rec(row["model"], row["data"], row["hash"]) for row in rows]
    rewrite_evidence(path, TAMPERINGS[kind](original), schema, metadata, rows)

    without = cli("sqlite:///nowhere.db", "verify", "--file", str(path))
    assert without.exit_code == (1 if kind in CAUGHT_WITHOUT_CHECKPOINT else 0), without.output

    result = cli(
        "sqlite:///nowhere.db", "verify", "--file", str(path),
        "--checkpoint", str(sqlite_copy / "saved.checkpoint"), "--key", str(keys[1]),
    )
    expect_caught(result, kind)


# --------------------------------------------------------------- Kafka


def kafka_records(url: str) -> list[Rec]:
    from ledger.config import open_log

    with open_log(url) as log:
        return [Rec(r.model, r.data, r.recorded_hash) for r in log.read()]


def produce_copy(bootstrap: str, topic: str, recs: list[Rec], originals: dict[str, Rec]) -> str:
    """The forged record set, produced to a new topic as the ledger would have."""
    from kafka import KafkaProducer

    from ledger.config import open_log

    url = f"kafka://{bootstrap}/{topic}?partitions=1"
    open_log(url).close()  # creates the topic the way the ledger does
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for rec in recs:
            source = rec if rec.recorded_hash is None else originals.get(rec.recorded_hash, rec)
            event = codec.decode(source.data)
            headers = [
                ("event_type", event.event_type.encode()),
                ("fingerprint", rec.data[2:10]),
                ("hash", rec.hash.encode()),
                ("event_id", str(event.event_id).encode()),
                ("sequence", str(event.sequence).encode()),
            ]
            producer.send(topic, key=rec.model.encode(), value=rec.data, headers=headers, partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
    return url


@pytest.fixture(scope="module")
def kafka_original(kafka_bootstrap, tmp_path_factory, keys):
    import uuid

    where = tmp_path_factory.mktemp("kafka")
    topic = f"ledger-test-{uuid.uuid4().hex[:12]}"
    url = f"kafka://{kafka_bootstrap}/{topic}?partitions=1"
    build_ledger(url)
    result = cli(url, "checkpoint", "--key", str(keys[0]), "--out", str(where / "saved.checkpoint"))
    assert result.exit_code == 0, result.output
    return url, topic, where


@pytest.mark.kafka
def test_the_kafka_checkpoint_is_stored_on_its_own_topic(kafka_original, keys):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    url, topic, where = kafka_original
    bootstrap = url.split("//")[1].split("/")[0]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{topic}.checkpoints")])
        configs = found["topic"][f"{topic}.checkpoints"]
    finally:
        admin.close()
    assert configs["retention.ms"]["value"] == "-1"
    assert configs["cleanup.policy"]["value"] == "delete"
    result = cli(url, "verify", "--checkpoint", str(where / "saved.checkpoint"), "--key", str(keys[1]))
    assert result.exit_code == 0, result.output
    assert "15 record(s); checkpoint ledger.test/models/0@15: consistent" in result.output


@pytest.mark.kafka
@pytest.mark.parametrize("kind", TAMPERINGS)
def test_every_rewritten_copy_of_a_kafka_log_is_caught_with_the_checkpoint(kafka_original, kafka_bootstrap, keys, kind):
    url, topic, where = kafka_original
    original = kafka_records(url)
    copy_url = produce_copy(
        kafka_bootstrap, f"{topic}-{kind.replace(' ', '-')}", TAMPERINGS[kind](original), {r.hash: r for r in original}
    )

    without = cli(copy_url, "verify")
    assert without.exit_code == (1 if kind in CAUGHT_WITHOUT_CHECKPOINT else 0), without.output

    result = cli(copy_url, "verify", "--checkpoint", str(where / "saved.checkpoint"), "--key", str(keys[1]))
    expect_caught(result, kind)


@pytest.mark.kafka
def test_a_forgery_a_raw_producer_appends_to_the_live_topic_is_named(kafka_bootstrap, kafka_topic, keys, tmp_path):
    from kafka import KafkaProducer

    url = f"kafka://{kafka_bootstrap}/{kafka_topic}?partitions=1"
    build_ledger(url)
    assert cli(url, "checkpoint", "--key", str(keys[0]), "--out", str(tmp_path / "saved")).exit_code == 0
    original = kafka_records(url)
    pump3 = next(r for r in original if r.model == "pump" and codec.decode(r.data).sequence == 3)
    forged = codec.encode(codec.decode(pump3.data).model_copy(update={"actor": "mallory"})).data
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(kafka_topic, key=b"pump", value=forged, headers=[("hash", hashlib.sha256(forged).hexdigest().encode())])
    producer.flush(timeout=30)
    producer.close(timeout=5)

    result = cli(url, "verify", "--checkpoint", str(tmp_path / "saved"), "--key", str(keys[1]))
    assert result.exit_code == 1, result.output
    assert "FAIL inserted: pump#3" in result.output
    assert "16 record(s); checkpoint ledger.test/models/0@15: 1 problem(s)" in result.output
