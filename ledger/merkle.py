"""The RFC 9162 (Certificate Transparency 2.0) Merkle tree, section 2.1.

Pure and standard-library only: hashing, an append-only tree that keeps every
complete subtree's hash (so the root of any earlier size and every proof can be
computed without re-reading the log), inclusion and consistency proofs, and their
verification exactly as RFC 9162 sections 2.1.3.2 and 2.1.4.2 describe it.

Verification uses every element of a proof and refuses a proof whose length does
not match the sizes it claims: an immudb verifier that checked only a proof's
first and last elements accepted forged histories (GHSA-672p-m5jq-mrh8).
``tests/unit/test_merkle.py`` feeds forged proofs to prove it.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()
"""MTH({}) — the hash of an empty tree is the hash of the empty string."""

_LEAF = b"\x00"
_NODE = b"\x01"


class ProofError(ValueError):
    """A proof does not prove what it claims, or is malformed."""


def leaf_hash(data: bytes) -> bytes:
    return sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """An append-only Merkle tree over leaf hashes.

    ``levels[k]`` holds, packed in one bytearray, the hash of every complete
    subtree of 2**k leaves, left to right: level 0 the leaf hashes, level 1 the
    hashes of leaf pairs, and so on. Extending the tree appends to each level once,
    level by level, so building it over a million records costs one SHA-256 per
    node and a few bytes of Python per node (no object per hash): 64 MB for a
    million leaves."""

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        return len(self.levels[0]) // HASH_SIZE

    def append_data(self, items: Iterable[bytes]) -> None:
        """Append the leaves for these record bytes, in order."""
        level = self.levels[0]
        for data in items:
            level += sha256(_LEAF + data).digest()
        self._rehash()

    def append_hashes(self, hashes: Iterable[bytes]) -> None:
        level = self.levels[0]
        for digest in hashes:
            if len(digest) != HASH_SIZE:
                raise ValueError("a leaf hash has 32 bytes")
            level += digest
        self._rehash()

    def _rehash(self) -> None:
        k = 0
        while True:
            below = self.levels[k]
            pairs = len(below) // (2 * HASH_SIZE)
            if pairs == 0:
                return
            if k + 1 == len(self.levels):
                self.levels.append(bytearray())
            above = self.levels[k + 1]
            done = len(above) // HASH_SIZE
            if done < pairs:
                view = memoryview(below)
                step = 2 * HASH_SIZE
                parts = [
                    sha256(_NODE + view[i : i + step]).digest() for i in range(done * step, pairs * step, step)
                ]
                view.release()
                above += b"".join(parts)
            k += 1

    def _node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self.levels[level][start : start + HASH_SIZE])

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} is outside a tree of size {self.size}")
        return self._node(0, index)

    def _hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); every range an RFC 9162 proof asks for starts at a
        multiple of the power of two its left part covers, so the left part is
        always one stored complete subtree."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._hash(start, start + k), self._hash(start + k, end))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside a tree of size {self.size}")

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]), RFC 9162 section 2.1.3.1."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is outside a tree of size {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self._hash(start + k, end))
                end = start + k
            else:
                proof.append(self._hash(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]), RFC 9162 section 2.1.4.1."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"cannot prove size {old_size} consistent with the smaller size {new_size}")
        if old_size in (0, new_size):
            return []
        later: list[bytes] = []
        start, end, complete = 0, new_size, True
        while old_size != end:
            k = _split(end - start)
            if old_size - start <= k:
                later.append(self._hash(start + k, end))
                end = start + k
            else:
                later.append(self._hash(start, start + k))
                start += k
                complete = False
        # The old tree is a complete subtree of the new one only while every step
        # went left: then the verifier already holds its hash (the old root).
        inner = [] if complete else [self._hash(start, end)]
        return inner + later[::-1]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a 32-byte SHA-256 hash")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """The root a valid proof of ``leaf`` at ``index`` in a tree of ``size``
    leads to (RFC 9162 section 2.1.3.2, steps 1-5); ProofError if the proof
    cannot be one for these numbers."""
    _check_hash(leaf, "the leaf hash")
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
        if sn == 0:
            raise ProofError(f"the proof has {len(proof)} elements, more than a tree of size {size} needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the proof has {len(proof)} elements, fewer than a tree of size {size} needs")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows ``leaf`` at ``index`` in the tree
    of ``size`` leaves whose root is ``root``."""
    _check_hash(root, "the root")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root of size {size}")


def verify_consistency(old_size: int, new_size: int, proof: list[bytes], old_root: bytes, new_root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows the tree of ``old_size`` with
    ``old_root`` is a prefix of the tree of ``new_size`` with ``new_root``
    (RFC 9162 section 2.1.4.2)."""
    _check_hash(old_root, "the old root")
    _check_hash(new_root, "the new root")
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"size {new_size} is smaller than size {old_size}: a log never shrinks")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes is empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree is empty")
        return
    if not proof:
        raise ProofError(f"an empty proof cannot show size {old_size} consistent with size {new_size}")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"the proof has {len(proof)} elements, more than sizes {old_size}→{new_size} need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the proof has {len(proof)} elements, fewer than sizes {old_size}→{new_size} need")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the root of size {old_size}: the log's first {old_size} records changed")
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the root of size {new_size}")
