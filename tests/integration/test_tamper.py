"""Tamper evidence on the embedded log: whoever edits the SQLite file by hand —
changes a byte, deletes, inserts or reorders events — `ledger verify` exits 1 and
names the first event concerned."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.cli import main
from ledger.client import Ledger


@pytest.fixture
def ledger_file(tmp_path):
    path = tmp_path / "log.db"
    with Ledger.open(f"sqlite:///{path}") as ledger:
        for draft in samples.lifecycle("pump"):
            ledger.emit(draft)
        for draft in samples.lifecycle("fan"):
            ledger.emit(draft)
    return path


def verify(path, *args):
    return CliRunner().invoke(main, ["--log", f"sqlite:///{path}", "verify", *args])


def tamper(path, sql, *params):
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def row(path, model, sequence):
    conn = sqlite3.connect(path)
    found = conn.execute(
        "SELECT position, data, hash, event_id FROM events WHERE model = ? AND sequence = ?", (model, sequence)
    ).fetchone()
    conn.close()
    return found


def test_intact_ledger_verifies(ledger_file):
    result = verify(ledger_file)
    assert result.exit_code == 0
    assert "2 stream(s), 10 event(s): intact" in result.output


@pytest.mark.parametrize("sequence", [1, 3, 5])
@pytest.mark.parametrize("offset", [12, -1])
def test_one_changed_byte_names_that_event(ledger_file, sequence, offset):
    position, data, _, _ = row(ledger_file, "pump", sequence)
    changed = bytearray(data)
    changed[offset] ^= 0x01
    tamper(ledger_file, "UPDATE events SET data = ? WHERE position = ?", bytes(changed), position)
    result = verify(ledger_file)
    assert result.exit_code == 1
    assert f"altered: pump#{sequence} at 0:{position}" in result.output
    assert "fan" not in result.output.split("\n")[0]


def test_a_forger_who_also_rewrites_the_stored_hash_is_caught_by_the_next_event(ledger_file):
    position, data, _, event_id = row(ledger_file, "pump", 2)
    import hashlib

    changed = data.replace(b"git:0123abc", b"git:evil000")
    assert changed != data
    tamper(
        ledger_file,
        "UPDATE events SET data = ?, hash = ? WHERE position = ?",
        changed,
        hashlib.sha256(changed).hexdigest(),
        position,
    )
    result = verify(ledger_file)
    assert result.exit_code == 1
    assert f"altered: pump#2 at 0:{position} (event {event_id})" in result.output


def test_no_event_is_accepted_on_a_stream_whose_history_was_forged(tmp_path):
    # A failed evaluation rewritten to "passed" (stored hash too) must not let an
    # approval through: the append path checks the chain it builds its state from.
    import hashlib

    from ledger import codec
    from ledger.errors import DecodeError

    path = tmp_path / "log.db"
    with Ledger.open(f"sqlite:///{path}") as ledger:
        for draft in (samples.snapshot("pump"), samples.trained("pump"), samples.evaluated("pump", passed=False),
                      samples.snapshot("pump", "s2")):
            ledger.emit(draft)
    position, data, _, _ = row(path, "pump", 3)
    forged = codec.encode(codec.decode(data).model_copy(update={"passed": True})).data
    tamper(path, "UPDATE events SET data = ?, hash = ? WHERE position = ?", forged, hashlib.sha256(forged).hexdigest(), position)

    with Ledger.open(f"sqlite:///{path}") as ledger:
        with pytest.raises(DecodeError, match=r"pump.*altered.*ledger verify"):
            ledger.emit(samples.approved("pump"))
    assert row(path, "pump", 5) is None
    result = CliRunner().invoke(
        main, ["--log", f"sqlite:///{path}", "emit", "approve", "--actor", "bob", "--json", "-"],
        input='{"model": "pump", "version": 1}',
    )
    assert result.exit_code == 1
    assert "altered" in result.output and "Traceback" not in result.output


def test_a_deleted_event_is_named_missing(ledger_file):
    position = row(ledger_file, "pump", 3)[0]
    tamper(ledger_file, "DELETE FROM events WHERE position = ?", position)
    result = verify(ledger_file, "--model", "pump")
    assert result.exit_code == 1
    assert "missing: pump#4" in result.output
    assert "#3 are missing" in result.output


def test_a_replayed_copy_of_an_event_is_named_inserted(ledger_file):
    conn = sqlite3.connect(ledger_file)
    conn.execute(
        "INSERT INTO events (model, sequence, event_id, event_type, fingerprint, data, hash, appended_ms)"
        " SELECT model, 99, event_id || '-copy', event_type, fingerprint, data, hash, appended_ms"
        " FROM events WHERE model = 'pump' AND sequence = 4"
    )
    conn.commit()
    conn.close()
    result = verify(ledger_file)
    assert result.exit_code == 1
    assert "inserted: pump#4" in result.output


def test_swapped_events_are_named_reordered(ledger_file):
    first, second = row(ledger_file, "pump", 2), row(ledger_file, "pump", 3)
    conn = sqlite3.connect(ledger_file)
    # Swap the stored bytes (and their hashes) of two neighbouring events.
    conn.execute("UPDATE events SET data = ?, hash = ? WHERE position = ?", (second[1], second[2], first[0]))
    conn.execute("UPDATE events SET data = ?, hash = ? WHERE position = ?", (first[1], first[2], second[0]))
    conn.commit()
    conn.close()
    result = verify(ledger_file)
    assert result.exit_code == 1
    assert "reordered: pump#3" in result.output
    assert "stored before sequence 2" in result.output


def test_verify_json_report(ledger_file):
    import json

    result = verify(ledger_file, "--json")
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["heads"]["pump"]["sequence"] == 5


def test_verify_of_an_unknown_model_is_exit_4_not_intact(ledger_file):
    # A typo must not read as "intact" to an auditor.
    result = verify(ledger_file, "--model", "pmup")
    assert result.exit_code == 4
    assert result.stderr.startswith("error: ") and "pmup" in result.stderr


@pytest.mark.parametrize("kind", ["evidence", "report"])
def test_events_cut_from_a_streams_end_are_caught_against_heads_recorded_earlier(ledger_file, tmp_path, kind):
    if kind == "evidence":
        heads = tmp_path / "evidence.avro"
        assert CliRunner().invoke(main, ["--log", f"sqlite:///{ledger_file}", "export", "--out", str(heads)]).exit_code == 0
    else:
        heads = tmp_path / "heads.json"
        heads.write_text(verify(ledger_file, "--json").output)
    assert verify(ledger_file, "--heads", str(heads)).exit_code == 0

    tamper(ledger_file, "DELETE FROM events WHERE model = 'pump' AND sequence >= 4")
    assert verify(ledger_file).exit_code == 0  # the chain alone cannot see a cut tail
    result = verify(ledger_file, "--heads", str(heads))
    assert result.exit_code == 1
    assert "missing: pump#5" in result.output and "now ends at #3" in result.output


def test_an_event_rewritten_at_the_recorded_head_is_caught(ledger_file, tmp_path):
    import hashlib

    heads = tmp_path / "heads.json"
    heads.write_text(verify(ledger_file, "--json").output)
    position, data, _, _ = row(ledger_file, "fan", 5)
    changed = data.replace(b"production", b"productiox")
    tamper(
        ledger_file,
        "UPDATE events SET data = ?, hash = ? WHERE position = ?",
        changed,
        hashlib.sha256(changed).hexdigest(),
        position,
    )
    assert verify(ledger_file).exit_code == 0  # last event, stored hash rewritten too
    result = verify(ledger_file, "--heads", str(heads))
    assert result.exit_code == 1
    assert "altered: fan#5" in result.output


def test_heads_say_how_many_were_checked_and_uppercase_hex_is_malformed(ledger_file, tmp_path):
    import json

    heads = tmp_path / "heads.json"
    heads.write_text(verify(ledger_file, "--json").output)
    result = verify(ledger_file, "--heads", str(heads))
    assert result.exit_code == 0 and "2 recorded head(s) checked: intact" in result.output
    one = verify(ledger_file, "--model", "fan", "--heads", str(heads))
    assert one.exit_code == 0 and "1 recorded head(s) checked: intact" in one.output
    # Hashes are lowercase hex everywhere in the ledger (events' prev_hash, the
    # service's schema): the right head in uppercase is malformed, not "altered".
    report = json.loads(heads.read_text())
    report["heads"]["fan"]["hash"] = report["heads"]["fan"]["hash"].upper()
    heads.write_text(json.dumps(report))
    upper = verify(ledger_file, "--heads", str(heads))
    assert upper.exit_code == 2 and upper.stdout == "", upper.output
    assert "fan" in upper.stderr and "64 lowercase hex digits" in upper.stderr


def test_heads_from_a_file_that_holds_none_is_bad_input(ledger_file, tmp_path):
    bogus = tmp_path / "x.json"
    bogus.write_text('{"no": "heads"}')
    result = verify(ledger_file, "--heads", str(bogus))
    assert result.exit_code == 2
    assert "holds no chain heads" in result.stderr


@pytest.mark.parametrize("command", [["verify"], ["export", "--out", "x.avro"]])
def test_a_mistyped_log_path_is_not_an_empty_intact_ledger(tmp_path, command):
    missing = tmp_path / "typo" / "log.db"
    result = CliRunner().invoke(main, ["--log", f"sqlite:///{missing}", *command])
    assert result.exit_code == 4
    assert "no ledger log at" in result.stderr
    assert not missing.exists()
