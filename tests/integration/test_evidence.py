"""`ledger export` writes evidence any Avro tool opens; `ledger verify --file`
checks it offline and notices an edited, cut or reordered file."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import avro.datafile
import avro.io
import fastavro
import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.append import Appender
from ledger.cli import main
from ledger.client import Ledger

START = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def log_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    ticks = iter(range(1000))
    with Ledger.open(url) as ledger:
        # one event a day from 1 March, so --since/--until have something to cut
        ledger.appender = Appender(ledger.log, clock=lambda: START + timedelta(days=next(ticks)))
        for draft in samples.lifecycle("pump") + [samples.drift("pump")] + samples.lifecycle("fan"):
            # occurred no later than this ledger's (fake) clock says it is
            ledger.emit(draft.model_copy(update={"occurred_at": START}))
    return url


def run(*args):
    return CliRunner().invoke(main, list(args))


def rewrite(path, change):
    with open(path, "rb") as handle:
        # keep the union branch of each decoded copy: ModelApproved and
        # ApprovalRejected have the same fields
        reader = fastavro.reader(handle, return_record_name=True, return_record_name_override=True)
        schema, metadata = reader.writer_schema, dict(reader.metadata)
        rows = list(reader)
    rows = change(rows)
    for key in ("avro.schema", "avro.codec"):
        metadata.pop(key, None)
    with open(path, "wb") as handle:
        fastavro.writer(handle, schema, rows, metadata=metadata)


def test_export_verifies_offline_and_apache_avro_reads_it(log_url, tmp_path):
    out = tmp_path / "evidence.avro"
    result = run("--log", log_url, "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 11 event(s) of 2 model(s)" in result.output

    # offline: no --log at all
    checked = run("verify", "--file", str(out))
    assert checked.exit_code == 0, checked.output
    assert "2 stream(s), 11 event(s): intact" in checked.output

    with open(out, "rb") as handle:
        rows = list(avro.datafile.DataFileReader(handle, avro.io.DatumReader()))
    deploy = next(r for r in rows if r["event_type"] == "ModelDeployed" and r["model"] == "pump")
    assert deploy["event"]["environment"] == "production"
    assert deploy["event"]["envelope"]["actor"] == "deployer"
    assert deploy["data"][:2] == b"\xc3\x01"


def test_a_changed_byte_in_the_evidence_is_named(log_url, tmp_path):
    out = tmp_path / "evidence.avro"
    run("--log", log_url, "export", "--out", str(out))

    def flip(rows):
        data = bytearray(rows[2]["data"])
        data[-1] ^= 1
        rows[2]["data"] = bytes(data)
        return rows

    rewrite(out, flip)
    result = run("verify", "--file", str(out))
    assert result.exit_code == 1
    assert "altered: pump#3" in result.output


def test_an_evidence_file_cut_short_is_noticed(log_url, tmp_path):
    out = tmp_path / "evidence.avro"
    run("--log", log_url, "export", "--out", str(out), "--model", "pump")
    rewrite(out, lambda rows: rows[:-1])
    result = run("verify", "--file", str(out))
    assert result.exit_code == 1
    assert "recorded head is #6" in result.output


def test_a_time_window_export_verifies_from_its_anchor(log_url, tmp_path):
    out = tmp_path / "window.avro"
    result = run("--log", log_url, "export", "--out", str(out), "--model", "pump", "--since", "2026-03-03", "--until", "2026-03-04")
    assert result.exit_code == 0, result.output
    assert "wrote 2 event(s)" in result.output
    checked = run("verify", "--file", str(out))
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--since", "yesterday"], 2, "malformed time"),
        (["--since", "2026-03-05", "--until", "2026-03-01"], 2, "--since is after --until"),
        (["--model", "' OR 1=1 --"], 4, "unknown model"),
    ],
)
def test_bad_export_requests(log_url, tmp_path, args, code, message):
    result = run("--log", log_url, "export", "--out", str(tmp_path / "x.avro"), *args)
    assert result.exit_code == code
    assert message in result.stderr


def test_a_file_that_is_not_evidence_is_refused(tmp_path):
    bogus = tmp_path / "bogus.avro"
    bogus.write_bytes(b"Obj\x01 definitely not avro")
    result = run("verify", "--file", str(bogus))
    assert result.exit_code == 2  # no ledger-evidence marker: not evidence at all, not a damaged one
    assert result.stderr.startswith("error: ") and "not a ledger evidence file" in result.stderr


def test_an_edited_decoded_copy_is_named(log_url, tmp_path):
    # What an auditor reads with avro-tools is the decoded copy: it must say what
    # the hashed bytes say.
    out = tmp_path / "evidence.avro"
    run("--log", log_url, "export", "--out", str(out))

    def forge(rows):
        name, fields = rows[3]["event"]
        rows[3]["event"] = (name, {**fields, "envelope": {**fields["envelope"], "actor": "mallory"}})
        return rows

    def relabel(rows):  # the approval shown as a rejection: same fields, other type
        rows[3]["event"] = ("io.mlledger.events.ApprovalRejected", rows[3]["event"][1])
        return rows

    for change in (forge, relabel):
        run("--log", log_url, "export", "--out", str(out))
        rewrite(out, change)
        result = run("verify", "--file", str(out))
        assert result.exit_code == 1
        assert "altered: pump#4" in result.output and "decoded" in result.output


def test_a_log_holding_an_unreadable_record_still_exports_and_the_evidence_names_it(log_url, tmp_path):
    # On Kafka anyone may produce to the topic and nothing can be deleted: the
    # auditor must still get the evidence, and the evidence must say so.
    import hashlib
    import sqlite3

    path = log_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        position = conn.execute(
            "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
            " VALUES ('pump', 99, 'foreign', 'Unknown', x'00', ?, ?, ?)",
            (b"hello", hashlib.sha256(b"hello").hexdigest(), int(START.timestamp() * 1000) + 3600_000),
        ).lastrowid
    out = tmp_path / "evidence.avro"

    result = run("--log", log_url, "export", "--out", str(out), "--model", "pump")

    assert result.exit_code == 0, result.output
    assert "wrote 6 event(s) of 1 model(s)" in result.output and "1 unreadable record(s)" in result.output
    checked = run("verify", "--file", str(out))
    assert checked.exit_code == 1
    assert f"undecodable: pump at 0:{position}" in checked.output
    assert "too short" in checked.output
    assert "6 event(s): 1 problem(s)" in checked.output
    # A window that does not hold the foreign record's append time leaves it out.
    window = run("--log", log_url, "export", "--out", str(out), "--force", "--model", "pump", "--since", "2026-03-03")
    assert window.exit_code == 0 and "unreadable" not in window.output
    assert run("verify", "--file", str(out)).exit_code == 0
