"""Proofs of the verifiable log for a long-running reader (the ledger service):
inclusion receipts and consistency proofs against the signed checkpoints stored
beside the log, from trees kept in memory and extended with what was appended.

Formats (the ones the CLI and the C2SP specifications already use):

* inclusion: a c2sp.org/tlog-proof receipt (:class:`ledger.notes.Receipt`) with the
  record's bytes as its ``extra`` data, as ``ledger prove`` writes and
  ``ledger verify --receipt FILE --key PUBKEY`` checks offline;
* consistency: the body of a c2sp.org/tlog-witness ``add-checkpoint`` request —
  ``old N``, one base64 hash per line (the RFC 9162 consistency proof from size N),
  a blank line, then the signed checkpoint of the newer size
  (:class:`ConsistencyProof`); :func:`verify_consistency` checks it against a
  checkpoint the auditor saved earlier.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from dataclasses import dataclass

from ledger import checkpoints as cp
from ledger import codec, merkle
from ledger.errors import DecodeError, InputError, NotFound
from ledger.log import EventLog
from ledger.notes import Checkpoint, NoteError, Receipt, SignedCheckpoint, Verifier

MAX_PROOF_LINES = 63
"""tlog-witness: at most 63 consistency proof lines (a tree of up to 2**63 leaves)."""

_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    path: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def __str__(self) -> str:
        lines = [f"old {self.old_size}", *(base64.b64encode(h).decode() for h in self.path)]
        return "\n".join(lines) + "\n\n" + str(self.checkpoint)

    @classmethod
    def parse(cls, text: str | bytes) -> ConsistencyProof:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError("the consistency proof is malformed: not UTF-8") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise InputError("the consistency proof is malformed: no blank line before the checkpoint")
        lines = head.split("\n")
        if not _OLD.fullmatch(lines[0]):
            raise InputError("the consistency proof is malformed: the first line is not 'old N'")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise InputError(f"the consistency proof is malformed: more than {MAX_PROOF_LINES} hashes")
        path = []
        for line in lines[1:]:
            try:
                digest = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                raise InputError("the consistency proof is malformed: a line is not base64") from None
            if len(digest) != 32:
                raise InputError("the consistency proof is malformed: a hash is not 32 bytes")
            path.append(digest)
        try:
            signed = SignedCheckpoint.parse(note)
        except NoteError as exc:
            raise InputError(f"the consistency proof's checkpoint is malformed: {exc}") from exc
        old_size = int(lines[0][4:])
        if old_size > signed.checkpoint.size:
            raise InputError(f"the consistency proof is malformed: old size {old_size} is above the checkpoint's {signed.checkpoint.size}")
        return cls(old_size, tuple(path), signed)


def verify_consistency(
    text: str | bytes, saved: Checkpoint, log_key: Verifier, *, witness_keys=(), min_witnesses: int = 0
) -> SignedCheckpoint:
    """Check that the log's newer checkpoint in ``text`` (signed by ``log_key``)
    extends ``saved``, a checkpoint the auditor kept: same origin, the proof's old
    size is ``saved``'s, and the RFC 9162 proof leads from ``saved``'s root to the
    newer one. Returns the newer checkpoint (the auditor's next ``saved``)."""
    proof = ConsistencyProof.parse(text)
    newer = proof.checkpoint.checkpoint
    cp.require_signatures(proof.checkpoint, log_key, witness_keys, min_witnesses)
    if newer.origin != saved.origin:
        raise cp.VerificationFailed(f"the proof is for {newer.origin}, the saved checkpoint is of {saved.origin}")
    if proof.old_size != saved.size:
        raise cp.VerificationFailed(f"the proof starts at size {proof.old_size}, the saved checkpoint has {saved.size}")
    try:
        merkle.verify_consistency(saved.size, newer.size, list(proof.path), saved.root, newer.root)
    except merkle.ProofError as exc:
        raise cp.Inconsistent(
            f"{newer.origin}@{newer.size} is not an append-only extension of the saved {saved.origin}@{saved.size}: {exc}"
        ) from exc
    return proof.checkpoint


def _event_id_of(data: bytes) -> str | None:
    """The event id an Avro single-object message starts with (the envelope is
    every event's first field, its event id the envelope's first), without decoding
    the rest; confirmed by a full decode before anything is proven with it."""
    # 0x48: the zig-zag varint of 36, a UUID's text length.
    if len(data) >= 47 and data[:2] == codec.MARKER and data[10] == 0x48:
        return data[11:47].decode("ascii", "replace")
    return None


class ProofSource:
    """The log's trees and where each event is in them, kept up to date by
    reading only what was appended since the last question. Thread-safe."""

    def __init__(self, log_: EventLog):
        self.log = log_
        self._where: dict[str, tuple[int, int, int, str | None]] = {}
        """Event id → (partition, leaf index, offset, model) of its first record."""
        self._trees = cp.LogTrees(log_, on_leaf=self._index)
        self._lock = threading.Lock()
        """Held while the trees and the index are read or extended."""
        self._store_lock = threading.Lock()
        self._store = None

    def _index(self, index: int, leaf: cp.Leaf) -> None:
        event_id = _event_id_of(leaf.data)
        if event_id is not None:
            self._where.setdefault(event_id, (leaf.partition, index, leaf.offset, leaf.model))

    @property
    def store(self):
        if self._store is None:
            self._store = cp.store_for(self.log)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def _all(self) -> list[SignedCheckpoint]:
        # One read of the store per question (on Kafka, a consumer of its topic).
        with self._store_lock:
            return self.store.all()

    def latest(self) -> list[SignedCheckpoint]:
        """The latest stored checkpoint of every origin (as the store's ``latest``:
        the largest, the last stored of equals), by partition."""
        best: dict[str, SignedCheckpoint] = {}
        for signed in self._all():
            known = best.get(signed.checkpoint.origin)
            if _partition(signed.checkpoint.origin) is not None and (known is None or signed.checkpoint.size >= known.checkpoint.size):
                best[signed.checkpoint.origin] = signed
        return sorted(best.values(), key=lambda s: (cp.partition_of(s.checkpoint.origin), s.checkpoint.origin))

    def _known(self, partition: int) -> None:
        partitions = self.log.partitions()
        if partition not in partitions:
            have = ", ".join(str(p) for p in partitions)
            raise NotFound(f"the log has no partition {partition} (its partitions: {have})")

    def latest_of(self, partition: int) -> SignedCheckpoint:
        self._known(partition)
        mine = [s for s in self.latest() if cp.partition_of(s.checkpoint.origin) == partition]
        if not mine:
            raise NotFound(f"no checkpoint of partition {partition} is signed yet (run `ledger checkpoint`)")
        return max(mine, key=lambda s: s.checkpoint.size)

    def _signed(self, partition: int, size: int | None, *, covering: int = 0) -> SignedCheckpoint:
        """The stored checkpoint of ``partition`` of ``size`` (the latest when None),
        the most co-signed of equals."""
        self._known(partition)
        mine = [s for s in self._all() if _partition(s.checkpoint.origin) == partition]
        if size is not None:
            mine = [s for s in mine if s.checkpoint.size == size]
            if not mine:
                raise NotFound(f"no signed checkpoint of partition {partition} has tree size {size}")
        elif not mine:
            raise NotFound(f"no checkpoint of partition {partition} is signed yet (run `ledger checkpoint`)")
        return max(mine, key=lambda s: (s.checkpoint.size, len(s.note.signatures)))

    def _tree(self, partition: int, signed: SignedCheckpoint) -> merkle.Tree:
        with self._lock:
            if self._trees.partitions.get(partition) is None or self._trees.tree(partition).size < signed.checkpoint.size:
                self._trees.update()
            tree = self._trees.tree(partition)
            # Never prove from a tree that does not extend what the log signed.
            cp.check_extends(tree, signed.checkpoint)
            return tree

    def inclusion(self, event_id: str, tree_size: int | None = None) -> Receipt:
        """A receipt for ``event_id`` against the signed checkpoint of ``tree_size``
        (default: the latest one of its partition)."""
        with self._lock:
            if event_id not in self._where:
                self._trees.update()
            where = self._where.get(event_id)
        if where is None:
            raise NotFound(f"no event {event_id} in the log")
        partition, index = where[0], where[1]
        signed = self._signed(partition, tree_size)
        if signed.checkpoint.size <= index:
            if tree_size is not None:
                raise InputError(
                    f"event {event_id} is leaf {index} of partition {partition}: a tree of size {tree_size} does not hold it"
                )
            raise NotFound(
                f"event {event_id} (leaf {index} of partition {partition}) is not covered by a signed checkpoint yet "
                "(run `ledger checkpoint`)"
            )
        tree = self._tree(partition, signed)
        data = self._record(where, event_id)
        if merkle.leaf_hash(data) != tree.leaf(index):
            raise NotFound(f"no event {event_id} in the log")  # pragma: no cover - not the bytes the tree holds
        return Receipt(index, tuple(tree.inclusion_proof(index, signed.checkpoint.size)), signed, data)

    def _record(self, where: tuple[int, int, int, str | None], event_id: str) -> bytes:
        """The stored bytes of the record at ``where``, confirmed to hold ``event_id``."""
        partition, _, offset, model = where
        for record in self.log.read(model=model) if model else self.log.read(after={partition: offset - 1}):
            if (record.position.partition, record.position.offset) != (partition, offset):
                continue
            try:
                if str(codec.decode(record.data).event_id) == event_id:
                    return record.data
            except DecodeError:
                pass
            break
        raise NotFound(f"no event {event_id} in the log")

    def consistency(self, partition: int, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        signed = self._signed(partition, new_size)
        size = signed.checkpoint.size
        if not 0 <= old_size <= size:
            raise InputError(f"old_size {old_size} is not between 0 and the checkpoint's tree size {size}")
        tree = self._tree(partition, signed)
        path = tree.consistency_proof(old_size, size) if old_size else []
        return ConsistencyProof(old_size, tuple(path), signed)


def _partition(origin: str) -> int | None:
    try:
        return cp.partition_of(origin)
    except InputError:
        return None
