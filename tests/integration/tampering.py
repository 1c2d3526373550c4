"""What a malicious insider with write access to the storage does, written once
as functions on the log's records (in log order) and applied to an embedded log
file, a copy of a Kafka topic, and an evidence file.

Every forger here updates whatever would give them away to the per-model
chains: the stored hash beside the bytes, the ``prev_hash`` and ``sequence`` of
every later event of the stream (re-encoded), an evidence file's chain heads.
Only the byte flip is clumsy, on purpose (the one kind the chains alone catch).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace

from ledger import codec, samples
from ledger.events import GENESIS_HASH


@dataclass(frozen=True)
class Rec:
    model: str
    data: bytes
    recorded_hash: str | None = None
    """The hash stored beside the bytes; None means the forger recomputes it."""

    @property
    def hash(self) -> str:
        return self.recorded_hash or hashlib.sha256(self.data).hexdigest()


def _event(rec: Rec):
    return codec.decode(rec.data)


def _find(recs: list[Rec], model: str, sequence: int) -> int:
    for i, rec in enumerate(recs):
        if rec.model == model and _event(rec).sequence == sequence:
            return i
    raise LookupError(f"{model}#{sequence}")


def relink(recs: list[Rec], models: set[str]) -> list[Rec]:
    """Recompute every chain link of ``models``' streams, in log order."""
    heads: dict[str, tuple[int, str]] = {}
    out = []
    for rec in recs:
        if rec.model not in models:
            out.append(rec)
            continue
        sequence, previous = heads.get(rec.model, (0, GENESIS_HASH))
        event = _event(rec).model_copy(update={"model": rec.model, "sequence": sequence + 1, "prev_hash": previous})
        data = codec.encode(event).data
        out.append(Rec(rec.model, data, None))
        heads[rec.model] = (sequence + 1, hashlib.sha256(data).hexdigest())
    return out


def _rewrite(recs: list[Rec], model: str, sequence: int, **changes) -> list[Rec]:
    i = _find(recs, model, sequence)
    event = _event(recs[i]).model_copy(update=changes)
    recs = list(recs)
    recs[i] = Rec(model, codec.encode(event).data, None)
    return recs


def byte_flip(recs):
    i = _find(recs, "pump", 3)
    data = bytearray(recs[i].data)
    data[len(data) // 2] ^= 0x01
    recs = list(recs)
    recs[i] = replace(recs[i], data=bytes(data), recorded_hash=recs[i].hash)
    return recs


def tail_rewritten(recs):
    return _rewrite(recs, "pump", 5, environment="staging")


def middle_forged(recs):
    return relink(_rewrite(recs, "pump", 4, actor="mallory", reason="looks fine"), {"pump"})


def last_deleted(recs):
    i = _find(recs, "pump", 5)
    return recs[:i] + recs[i + 1 :]


def stream_deleted(recs):
    return [r for r in recs if r.model != "fan"]


def stream_renamed(recs):
    return relink([replace(r, model="blower") if r.model == "fan" else r for r in recs], {"blower"})


def streams_swapped(recs):
    swap = {"fan": "press", "press": "fan"}
    return relink([replace(r, model=swap.get(r.model, r.model)) for r in recs], {"fan", "press"})


def forged_inserted(recs):
    i = _find(recs, "pump", 5)
    last = _event(recs[i])
    forged = samples.deployed("pump", environment="staging").model_copy(
        update={"sequence": 6, "prev_hash": recs[i].hash, "event_id": uuid.uuid4(), "recorded_at": last.recorded_at}
    )
    return recs[: i + 1] + [Rec("pump", codec.encode(forged).data, None)] + recs[i + 1 :]


def reordered(recs):
    # Two neighbours of different streams: each stream keeps its own order.
    i = _find(recs, "pump", 5)
    j = _find(recs, "fan", 5)
    recs = list(recs)
    recs[i], recs[j] = recs[j], recs[i]
    return recs


def truncated(recs):
    return recs[:-3]


TAMPERINGS = {
    "byte flip": byte_flip,
    "tail data and hash rewritten": tail_rewritten,
    "middle event forged and relinked": middle_forged,
    "last event deleted": last_deleted,
    "whole stream deleted": stream_deleted,
    "stream renamed": stream_renamed,
    "two streams swapped": streams_swapped,
    "forged event inserted": forged_inserted,
    "records reordered": reordered,
    "log truncated": truncated,
}


def build_ledger(url: str) -> None:
    """Three models, their lifecycles interleaved (so the log order mixes streams)."""
    from ledger.client import Ledger

    with Ledger.open(url) as ledger:
        lifecycles = [samples.lifecycle(m) for m in ("pump", "fan", "press")]
        for step in range(5):
            for drafts in lifecycles:
                ledger.emit(drafts[step])
