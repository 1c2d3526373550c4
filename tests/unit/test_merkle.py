"""The Merkle tree against published vectors (transparency-dev/merkle's testonly
and proof/verify_test.go data, the RFC 6962 reference tree), against a naive
recursive implementation of RFC 9162 section 2.1 written here, and against forged
proofs (every element must count: GHSA-672p-m5jq-mrh8)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import ProofError, Tree

# transparency-dev/merkle testonly/constants.go: LeafInputs, RootHashes (by size).
LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# proof/verify_test.go: inclusionProofs (leaf numbered from 1) and consistencyProofs.
INCLUSION = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


# --------------------------------------------------------------- naive reference
# RFC 9162 section 2.1 written as literally as possible, on lists of bytes.


def ref_mth(data: list[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, data[:k]) + [ref_mth(data[k:])]
    return ref_path(m - k, data[k:]) + [ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], b: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if b else [ref_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, data[:k], b) + [ref_mth(data[k:])]
    return ref_subproof(m - k, data[k:], False) + [ref_mth(data[:k])]


def tree_of(data: list[bytes]) -> Tree:
    tree = Tree()
    tree.append_data(data)
    return tree


# --------------------------------------------------------------- published vectors


def test_roots_of_every_size_match_the_published_vectors():
    tree = Tree()
    assert tree.root() == ROOTS[0]
    for size, leaf in enumerate(LEAVES, start=1):
        tree.append_data([leaf])
        assert tree.root() == ROOTS[size]
    for size in range(len(ROOTS)):
        assert tree.root(size) == ROOTS[size]


def test_a_tree_grown_in_batches_equals_one_grown_leaf_by_leaf():
    batched = Tree()
    batched.append_data(LEAVES[:3])
    batched.append_data(LEAVES[3:])
    assert batched.levels == tree_of(LEAVES).levels


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_and_verify(leaf, size, proof):
    tree = tree_of(LEAVES)
    expected = [h(p) for p in proof]
    assert tree.inclusion_proof(leaf - 1, size) == expected
    merkle.verify_inclusion(leaf - 1, size, merkle.leaf_hash(LEAVES[leaf - 1]), expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_and_verify(old, new, proof):
    tree = tree_of(LEAVES)
    expected = [h(p) for p in proof]
    assert tree.consistency_proof(old, new) == expected
    merkle.verify_consistency(old, new, expected, ROOTS[old], ROOTS[new])


# --------------------------------------------------------------- forged proofs


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    forged = list(proof)
    forged[i] = bytes([forged[i][0] ^ 8]) + forged[i][1:]
    return forged


def forged_inclusions(index, size, proof, root, leaf):
    """transparency-dev's corruptInclusionProof probes, and more."""
    yield "index - 1", index - 1, size, leaf, proof, root
    yield "index + 1", index + 1, size, leaf, proof, root
    yield "index ^ 2", index ^ 2, size, leaf, proof, root
    yield "size * 2", index, size * 2, leaf, proof, root
    yield "size / 2", index, size // 2, leaf, proof, root
    yield "wrong leaf", index, size, hashlib.sha256(b"WrongLeaf").digest(), proof, root
    yield "short leaf", index, size, b"WrongLeaf", proof, root
    yield "empty root", index, size, leaf, proof, merkle.EMPTY_ROOT
    yield "random root", index, size, leaf, proof, SOME_HASH
    yield "trailing garbage", index, size, leaf, proof + [b""], root
    yield "trailing root", index, size, leaf, proof + [root], root
    yield "preceding garbage", index, size, leaf, [b""] + proof, root
    yield "preceding root", index, size, leaf, [root] + proof, root
    for i in range(len(proof)):
        yield f"changed element {i}", index, size, leaf, _flip(proof, i), root
    if proof:
        yield "removed element", index, size, leaf, proof[:-1], root
    if len(proof) > 1:
        yield "inserted element", index, size, leaf, [proof[0], SOME_HASH] + proof[1:], root
        yield "swapped elements", index, size, leaf, [proof[1], proof[0]] + proof[2:], root


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_every_forged_inclusion_proof_is_refused(leaf, size, proof):
    proof = [h(p) for p in proof]
    index, leaf_hash = leaf - 1, merkle.leaf_hash(LEAVES[leaf - 1])
    accepted = []
    for name, i, n, lh, p, root in forged_inclusions(index, size, proof, ROOTS[size], leaf_hash):
        try:
            merkle.verify_inclusion(i, n, lh, p, root)
        except ProofError:
            continue
        accepted.append(name)
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_every_forged_consistency_proof_is_refused(old, new, proof):
    proof = [h(p) for p in proof]
    r1, r2 = ROOTS[old], ROOTS[new]
    probes = [
        ("old - 1", old - 1, new, proof, r1, r2),
        ("old + 1", old + 1, new, proof, r1, r2),
        ("old ^ 2", old ^ 2, new, proof, r1, r2),
        ("new * 2", old, new * 2, proof, r1, r2),
        ("new / 2", old, new // 2, proof, r1, r2),
        ("wrong old root", old, new, proof, SOME_HASH, r2),
        ("wrong new root", old, new, proof, r1, SOME_HASH),
        ("swapped roots", old, new, proof, r2, r1),
        ("empty proof", old, new, [], r1, r2),
        ("trailing garbage", old, new, proof + [b""], r1, r2),
        ("trailing old root", old, new, proof + [r1], r1, r2),
        ("trailing new root", old, new, proof + [r2], r1, r2),
        ("preceding garbage", old, new, [b""] + proof, r1, r2),
        ("preceding old root", old, new, [r1] + proof, r1, r2),
        ("preceding new root", old, new, [r2] + proof, r1, r2),
        ("preceding proof[0]", old, new, [proof[0]] + proof, r1, r2),
        ("truncated", old, new, proof[:-1], r1, r2),
        ("a proof for another tree", old, new, tree_of([b"x"] * new).consistency_proof(old, new), r1, r2),
    ] + [(f"changed element {i}", old, new, _flip(proof, i), r1, r2) for i in range(len(proof))]
    accepted = []
    for name, m, n, p, a, b in probes:
        try:
            merkle.verify_consistency(m, n, p, a, b)
        except ProofError:
            continue
        accepted.append(name)
    assert accepted == []


def test_a_proof_for_another_tree_is_refused():
    ours, theirs = tree_of(LEAVES), tree_of([b"forged"] + LEAVES[1:])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(5, 8, merkle.leaf_hash(LEAVES[5]), theirs.inclusion_proof(5), ours.root())


def test_trivial_consistency_cases():
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    merkle.verify_consistency(0, 5, [], merkle.EMPTY_ROOT, ROOTS[5])
    merkle.verify_consistency(3, 3, [], ROOTS[3], ROOTS[3])
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 3, [], ROOTS[3], ROOTS[4])  # same size, another root
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 3, [ROOTS[3]], ROOTS[3], ROOTS[3])
    with pytest.raises(ProofError):
        merkle.verify_consistency(4, 3, [], ROOTS[4], ROOTS[3])  # a log never shrinks
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 0, merkle.leaf_hash(b""), [], merkle.EMPTY_ROOT)


# --------------------------------------------------------------- properties

leaves = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaves, st.data())
def test_tree_agrees_with_the_naive_reference(data, draw):
    tree = Tree()
    cut = draw.draw(st.integers(0, len(data)))
    tree.append_data(data[:cut])
    tree.append_data(data[cut:])
    size = draw.draw(st.integers(1, len(data)))
    assert tree.root(size) == ref_mth(data[:size])
    index = draw.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index, size)
    assert proof == ref_path(index, data[:size])
    merkle.verify_inclusion(index, size, merkle.leaf_hash(data[index]), proof, tree.root(size))
    old = draw.draw(st.integers(1, size))
    consistency = tree.consistency_proof(old, size)
    assert consistency == (ref_subproof(old, data[:size], True) if old < size else [])
    merkle.verify_consistency(old, size, consistency, tree.root(old), tree.root(size))


@settings(max_examples=150, deadline=None)
@given(leaves, st.data())
def test_any_changed_element_or_number_is_refused(data, draw):
    tree = tree_of(data)
    size = tree.size
    old = draw.draw(st.integers(1, size))
    proof = tree.consistency_proof(old, size)
    if proof:
        i = draw.draw(st.integers(0, len(proof) - 1))
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, _flip(proof, i), tree.root(old), tree.root(size))
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, proof[:i] + proof[i + 1 :], tree.root(old), tree.root(size))
    index = draw.draw(st.integers(0, size - 1))
    path = tree.inclusion_proof(index, size)
    other = draw.draw(st.integers(0, size - 1))
    if data[other] != data[index] or other != index:
        try:
            merkle.verify_inclusion(other, size, merkle.leaf_hash(data[index]), path, tree.root(size))
        except ProofError:
            pass
        else:
            # Only possible when the claimed leaf really sits there too.
            assert data[other] == data[index] and ref_path(other, data) == path
    if path:
        i = draw.draw(st.integers(0, len(path) - 1))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, merkle.leaf_hash(data[index]), _flip(path, i), tree.root(size))
