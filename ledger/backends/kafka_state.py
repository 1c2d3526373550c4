"""Rule-state snapshots of the Kafka log: a writer's first append reads the tail of
its partition, not its whole history.

Where they live
---------------
On the compacted companion topic ``<topic>.state`` (``cleanup.policy=compact``, as
many partitions as the lifecycle topic): the snapshot of lifecycle partition *p* is
a record of state partition *p*, keyed ``p``. Compaction keeps the latest one per
key; nothing else is ever needed, since a snapshot is a function of the lifecycle
partition's prefix it covers. It is produced by the partition's writer **in the
same Kafka transaction as the events it covers** (the transactional producer adds
both partitions to its transaction), so ``read_committed`` readers see both or
neither: an aborted append leaves no snapshot, and a snapshot can never describe
events the log does not hold.

What a snapshot holds (zlib-compressed JSON, :func:`encode`)
-------------------------------------------------------------
* ``offset``: every committed record of the partition below it is covered;
* per model stream of the partition: its head (sequence, hash and offset of its
  last event below ``offset``) and its :class:`ledger.rules.ModelState` after that
  event in :mod:`ledger.rule_snapshots`' JSON — or no state when the stream is
  damaged (a full fold then refuses it, as before);
* ``ids``: a Bloom filter of every event id below ``offset`` (:class:`IdFilter`).
  The writer keeps every event id of a partition it read in memory, to answer a
  retry as a duplicate and to keep event ids unique in the whole log. After a start
  from a snapshot it holds only the tail's ids: an id the filter does not hold is
  certainly new; one it may hold (a real retry of an old event, or a false
  positive, < 0.1 %) makes the writer read the partition's prefix once, and answer
  exactly as before. So the answers never change; only their cost does.

How a writer uses one: :class:`ledger.backends.kafka.KafkaLog` reads the latest
snapshot of a partition when it first indexes it (its own partition, and the other
partitions the event-id check reads), checks it (it decodes, names this topic and
partition, its offset is not past the partition's end, and the record at its newest
head still is that event), and then reads only the records after its offset. Each
stream's head is checked again, by reading the event at the recorded offset, before
the stream's state is used (``_View.snapshot``). Anything that does not match is
logged and the partition is read from offset 0, as without snapshots. Why that is
enough: ``docs/kafka-write-path.md`` ("The writer's first append").

Written every :data:`EVERY` offsets of the partition (a replay tail of at most about
that many records), by whichever process holds the writer role.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ledger import codec, rule_snapshots, rules
from ledger.chain import walk_stream
from ledger.log import StoredRecord

FORMAT = 1

EVERY = 1000
"""A partition's writer writes a new snapshot once the partition grew by this many
offsets since the last one: a fresh writer reads at most about this many records."""

MAX_BYTES = 8 * 1024 * 1024
"""Largest snapshot record; the state topic is created with this message limit. A
larger snapshot (millions of events on one partition) is not written, with a warning:
writers then read the whole partition, as without snapshots."""

TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "max.message.bytes": str(MAX_BYTES),
}


def state_topic(topic: str) -> str:
    return f"{topic}.state"


class IdFilter:
    """A scalable Bloom filter (Almeida et al., "Scalable Bloom Filters", 2007) of
    event ids: slices of doubling capacity, each with a tighter error rate, so it
    grows with the partition without knowing its size and its false-positive rate
    stays below ``sum(ERROR * TIGHTEN**i) = 0.001``.

    Hand-written (40 lines over :mod:`hashlib`) rather than a library's because its
    bits are a stored format: the hashing must never change under a dependency
    upgrade, or every stored filter would answer wrongly."""

    FIRST = 4096
    ERROR = 0.0002
    TIGHTEN = 0.8

    def __init__(self, slices: list[list] | None = None):
        self.slices = slices or []
        """Each ``[capacity, hashes, count, bits]``."""

    @staticmethod
    def _positions(item: str, hashes: int, size: int) -> Iterable[int]:
        digest = hashlib.blake2b(item.encode("utf-8"), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        return ((h1 + j * h2) % size for j in range(hashes))

    def _new_slice(self) -> list:
        n = len(self.slices)
        capacity = self.FIRST * 2**n
        error = self.ERROR * self.TIGHTEN**n
        size = math.ceil(-capacity * math.log(error) / math.log(2) ** 2)
        size += -size % 8
        hashes = math.ceil(-math.log2(error))
        return [capacity, hashes, 0, bytearray(size // 8)]

    def add(self, item: str) -> None:
        if not self.slices or self.slices[-1][2] >= self.slices[-1][0]:
            self.slices.append(self._new_slice())
        current = self.slices[-1]
        bits = current[3]
        for i in self._positions(item, current[1], len(bits) * 8):
            bits[i >> 3] |= 1 << (i & 7)
        current[2] += 1

    def might_hold(self, item: str) -> bool:
        for _, hashes, _, bits in self.slices:
            if all(bits[i >> 3] & (1 << (i & 7)) for i in self._positions(item, hashes, len(bits) * 8)):
                return True
        return False

    def copy(self) -> IdFilter:
        return IdFilter([[c, h, n, bytearray(b)] for c, h, n, b in self.slices])

    def to_json(self) -> list:
        return [[c, h, n, base64.b64encode(bytes(b)).decode("ascii")] for c, h, n, b in self.slices]

    @classmethod
    def from_json(cls, document) -> IdFilter:
        slices = []
        for capacity, hashes, count, bits in document:
            raw = bytearray(base64.b64decode(bits, validate=True))
            if not raw or int(hashes) < 1:
                raise ValueError("empty filter slice")
            slices.append([int(capacity), int(hashes), int(count), raw])
        return cls(slices)


@dataclass(frozen=True)
class Entry:
    """One stream's head at the snapshot's offset, and its rule state there."""

    sequence: int
    hash: str
    offset: int
    state: bytes | None
    """:mod:`ledger.rule_snapshots` JSON; None for a damaged stream."""


@dataclass
class PartitionSnapshot:
    topic: str
    partition: int
    offset: int
    entries: dict[str, Entry] = field(default_factory=dict)
    ids: IdFilter = field(default_factory=IdFilter)


def encode(snapshot: PartitionSnapshot) -> bytes:
    document = {
        "format": FORMAT,
        "topic": snapshot.topic,
        "partition": snapshot.partition,
        "offset": snapshot.offset,
        "streams": {
            model: {
                "sequence": e.sequence,
                "hash": e.hash,
                "offset": e.offset,
                "state": e.state.decode("utf-8") if e.state is not None else None,
            }
            for model, e in sorted(snapshot.entries.items())
        },
        "ids": snapshot.ids.to_json(),
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode("utf-8"), 6)


def decode(data: bytes | None, topic: str, partition: int) -> PartitionSnapshot | None:
    """The snapshot in ``data`` if it is one this code wrote for ``topic``'s
    ``partition``; None for anything else (never raises)."""
    try:
        document = json.loads(zlib.decompress(data or b""))
        if document.get("format") != FORMAT or document["topic"] != topic or document["partition"] != partition:
            return None
        entries = {}
        for model, e in document["streams"].items():
            state = e["state"]
            entries[str(model)] = Entry(int(e["sequence"]), str(e["hash"]), int(e["offset"]),
                                        state.encode("utf-8") if state is not None else None)
        offset = int(document["offset"])
        if offset < 0 or any(e.offset >= offset for e in entries.values()):
            return None
        return PartitionSnapshot(topic, partition, offset, entries, IdFilter.from_json(document["ids"]))
    except (ValueError, TypeError, KeyError, AttributeError, zlib.error):
        return None


def advance(entries: dict[str, Entry], streams: dict[str, Sequence[StoredRecord]]) -> dict[str, Entry]:
    """``entries`` extended with each stream's records after its entry's head,
    folded with every check of the append path's full fold (``ledger.chain``).
    A stream that does not fold (damaged, or an entry that does not chain onto its
    records) keeps its head but no state: a writer then folds it in full."""
    result = dict(entries)
    for model, records in streams.items():
        if not records:
            continue
        entry = entries.get(model)
        last = records[-1]
        state = None
        if entry is None or entry.state is not None:
            start = rule_snapshots.loads(entry.state) if entry is not None else rules.ModelState(model)
            if start is not None and start.model == model:
                folded, problem = walk_stream(model, records, start, codec.decode)
                if problem is None:
                    state = rule_snapshots.dumps(folded)
        result[model] = Entry(
            last.sequence if last.sequence is not None else -1, last.hash, last.position.offset, state
        )
    return result
