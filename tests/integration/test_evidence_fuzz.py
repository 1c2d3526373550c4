"""Every corruption of a verified evidence file that changes its events, its chain
data or its metadata makes ``ledger verify --file`` fail (exit 1: the file was
read and something in it is wrong, or it is damaged past reading) or refuse it
(exit 2: it is not a ledger evidence file at all). Never exit 0, never a
traceback.

Corruptions are made three ways: field by field on the decoded rows, key by key
on the metadata (both rewritten with fastavro, so the container itself is sound),
and bit flips and cuts of the raw bytes (seeded, of fixed bytes). A raw change
that leaves every row and every metadata entry (the container's schema text
included) as they were changes nothing and may pass; the test checks that it
really changed nothing.
"""

from __future__ import annotations

import copy
import io
import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import fastavro
import pytest
from click.testing import CliRunner

from ledger import samples
from ledger.append import Appender
from ledger.cli import main
from ledger.client import Ledger

START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    """A verified evidence file of two models, and its rows and metadata."""
    where = tmp_path_factory.mktemp("evidence")
    url = f"sqlite:///{where / 'log.db'}"
    ticks = iter(range(1000))
    with Ledger.open(url) as ledger:
        ledger.appender = Appender(ledger.log, clock=lambda: START + timedelta(days=next(ticks)))
        drafts = samples.lifecycle("pump") + [samples.drift("pump")] + samples.lifecycle("fan")
        for number, draft in enumerate(drafts):
            # Fixed ids and times: the same bytes every run, so a seed names a case.
            ledger.emit(draft.model_copy(update={"event_id": uuid.UUID(int=number + 1), "occurred_at": START}))
    out = where / "evidence.avro"
    assert run("--log", url, "export", "--out", str(out)).exit_code == 0
    assert run("verify", "--file", str(out)).exit_code == 0
    raw = out.read_bytes()
    return raw, *read(raw)


def read(raw: bytes):
    reader = fastavro.reader(io.BytesIO(raw), return_record_name=True, return_record_name_override=True)
    rows = list(reader)
    return reader.writer_schema, rows, dict(reader.metadata)


def write(schema, rows, metadata) -> bytes:
    buffer = io.BytesIO()
    # fastavro adds its avro.* entries itself (and into the dict it is given).
    entries = {k: v for k, v in metadata.items() if not k.startswith("avro.")}
    fastavro.writer(buffer, schema, rows, metadata=entries, codec="deflate")
    return buffer.getvalue()


def verify_bytes(tmp_path, data: bytes):
    path = tmp_path / "corrupted.avro"
    path.write_bytes(data)
    result = run("verify", "--file", str(path))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


# --- the rows, field by field ------------------------------------------------------


def _flip_last(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 1])


ROW_CHANGES = {
    "partition": lambda r: {**r, "partition": r["partition"] + 1},
    "offset": lambda r: {**r, "offset": r["offset"] + 1000},
    "model": lambda r: {**r, "model": "other"},
    "model-of-the-other-stream": lambda r: {**r, "model": "fan" if r["model"] == "pump" else "pump"},
    "sequence": lambda r: {**r, "sequence": r["sequence"] + 1},
    "event_type": lambda r: {**r, "event_type": "ModelRetired"},
    "hash": lambda r: {**r, "hash": "0" * 64},
    "data-last-byte": lambda r: {**r, "data": _flip_last(r["data"])},
    "data-fingerprint": lambda r: {**r, "data": r["data"][:2] + bytes(8) + r["data"][10:]},
    "copy-actor": lambda r: {
        **r,
        "event": (r["event"][0], {**r["event"][1], "envelope": {**r["event"][1]["envelope"], "actor": "mallory"}}),
    },
    "copy-recorded-at": lambda r: {
        **r,
        "event": (
            r["event"][0],
            {**r["event"][1], "envelope": {**r["event"][1]["envelope"], "recorded_at": r["event"][1]["envelope"]["recorded_at"] + timedelta(microseconds=1)}},
        ),
    },
}


@pytest.mark.parametrize("field", sorted(ROW_CHANGES))
@pytest.mark.parametrize("at", [0, 3, 6, 10])
def test_a_changed_field_of_any_row_fails(evidence, tmp_path, field, at):
    _, schema, rows, metadata = evidence
    rows = copy.deepcopy(rows)
    rows[at] = ROW_CHANGES[field](rows[at])
    result = verify_bytes(tmp_path, write(schema, rows, metadata))
    assert result.exit_code == 1, (field, at, result.output)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda rows: rows[1:], id="first-row-removed"),
        pytest.param(lambda rows: rows[:5] + rows[6:], id="a-middle-row-removed"),
        pytest.param(lambda rows: rows[:-1], id="last-row-removed"),
        pytest.param(lambda rows: rows + [rows[-1]], id="last-row-twice"),
        pytest.param(lambda rows: rows[:3] + [rows[2]] + rows[3:], id="a-row-twice"),
        pytest.param(lambda rows: [rows[1], rows[0]] + rows[2:], id="two-rows-swapped"),
        pytest.param(lambda rows: rows[6:] + rows[:6], id="streams-reordered"),
        pytest.param(lambda rows: [], id="every-row-removed"),
    ],
)
def test_removed_repeated_or_reordered_rows_fail(evidence, tmp_path, change):
    _, schema, rows, metadata = evidence
    result = verify_bytes(tmp_path, write(schema, change(copy.deepcopy(rows)), metadata))
    assert result.exit_code == 1, result.output


# --- the metadata, key by key ------------------------------------------------------


def _chains(change):
    def apply(metadata):
        chains = json.loads(metadata["ledger.chains"])
        change(chains)
        return {**metadata, "ledger.chains": json.dumps(chains, sort_keys=True)}

    return apply


def _schemas(change):
    def apply(metadata):
        schemas = json.loads(metadata["ledger.schemas"])
        change(schemas)
        return {**metadata, "ledger.schemas": json.dumps(schemas, sort_keys=True)}

    return apply


def _drop_first_schema(schemas):
    del schemas[sorted(schemas)[0]]


def _edit_first_schema(schemas):
    first = sorted(schemas)[0]
    schemas[first] = schemas[first].replace('"doc"', '"dok"', 1) + " "


# (id, change, expected exit code)
METADATA_CHANGES = [
    ("format-removed", lambda m: {k: v for k, v in m.items() if k != "ledger.format"}, 2),
    ("format-changed", lambda m: {**m, "ledger.format": "ledger-evidence/0"}, 2),
    ("chains-removed", lambda m: {k: v for k, v in m.items() if k != "ledger.chains"}, 1),
    ("chains-not-json", lambda m: {**m, "ledger.chains": "{"}, 1),
    ("chain-of-a-model-removed", _chains(lambda c: c.pop("fan")), 1),
    ("chain-of-a-model-added", _chains(lambda c: c.update(ghost={**c["fan"]})), 1),
    ("anchor-sequence", _chains(lambda c: c["pump"].update(anchor_sequence=1)), 1),
    ("anchor-hash", _chains(lambda c: c["pump"].update(anchor_hash="1" * 64)), 1),
    ("head-sequence", _chains(lambda c: c["fan"].update(head_sequence=c["fan"]["head_sequence"] + 1)), 1),
    ("head-hash", _chains(lambda c: c["fan"].update(head_hash="2" * 64)), 1),
    ("source", lambda m: {**m, "ledger.source": "kafka://elsewhere/ledger"}, 1),
    ("source-removed", lambda m: {k: v for k, v in m.items() if k != "ledger.source"}, 1),
    ("filters", lambda m: {**m, "ledger.filters": json.dumps({"model": "fan", "since": None, "until": None})}, 1),
    ("filters-removed", lambda m: {k: v for k, v in m.items() if k != "ledger.filters"}, 1),
    (
        "unreadable-added",
        lambda m: {**m, "ledger.unreadable": json.dumps([{"position": "0:99", "model": "pump", "sha256": "0" * 64, "reason": "x"}])},
        1,
    ),
    ("unreadable-not-json", lambda m: {**m, "ledger.unreadable": "["}, 1),
    ("schema-removed", _schemas(_drop_first_schema), 1),
    ("schema-edited", _schemas(_edit_first_schema), 1),
    ("schemas-removed", lambda m: {k: v for k, v in m.items() if k != "ledger.schemas"}, 1),
    ("key-added", lambda m: {**m, "ledger.note": "trust me"}, 1),
]


@pytest.mark.parametrize(("change", "code"), [pytest.param(c, e, id=i) for i, c, e in METADATA_CHANGES])
def test_changed_metadata_fails_or_is_refused(evidence, tmp_path, change, code):
    _, schema, rows, metadata = evidence
    result = verify_bytes(tmp_path, write(schema, rows, change(dict(metadata))))
    assert result.exit_code == code, result.output


# --- the raw bytes -----------------------------------------------------------------


def _raw_cases(raw: bytes, seed: int, flips: int):
    sync = fastavro.reader(io.BytesIO(raw))._header["sync"]
    blocks = raw.index(sync) + len(sync)
    rng = random.Random(seed)
    for cut in range(0, len(raw), 61):
        yield f"cut at {cut}", raw[:cut]
    for _ in range(flips):
        where = rng.randrange(len(raw))
        changed = bytearray(raw)
        changed[where] ^= 1 << rng.randrange(8)
        yield f"bit flipped at {where} ({'header' if where < blocks else 'blocks'})", bytes(changed)


def _content(data: bytes):
    try:
        _, rows, metadata = read(data)
    except Exception:  # noqa: BLE001 - unreadable is "changed"
        return None
    return rows, metadata


@pytest.mark.parametrize("seed", [20261129, 14, 2026])
def test_raw_flips_and_cuts_that_change_anything_fail(evidence, tmp_path, seed):
    raw, _, rows, metadata = evidence
    for label, data in _raw_cases(raw, seed, 400):
        result = verify_bytes(tmp_path, data)
        if _content(data) == (rows, metadata):
            continue
        assert result.exit_code in (1, 2), (label, data[max(0, int(label.split()[-2]) - 40):][:80] if "flipped" in label else "", result.output)
        if not result.stdout:
            assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, (label, result.stderr)
