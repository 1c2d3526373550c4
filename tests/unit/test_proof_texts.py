"""The consistency proof's text (the c2sp.org/tlog-witness add-checkpoint body):
written, read back, checked against a saved checkpoint, and malformed texts
refused with one clear error."""

from __future__ import annotations

import base64

import pytest

from ledger import merkle
from ledger.checkpoints import Inconsistent, VerificationFailed
from ledger.errors import InputError
from ledger.notes import Checkpoint, Signer, sign_checkpoint
from ledger.proofs import ConsistencyProof, verify_consistency

SIGNER = Signer.generate("ledger.test/models")
OTHER = Signer.generate("ledger.test/models")


def _world(old: int = 5, new: int = 13):
    tree = merkle.Tree()
    tree.append_data([f"record {i}".encode() for i in range(new)])
    saved = Checkpoint("ledger.test/models/0", old, tree.root(old))
    signed = sign_checkpoint(Checkpoint("ledger.test/models/0", new, tree.root()), SIGNER)
    return tree, saved, ConsistencyProof(old, tuple(tree.consistency_proof(old, new)), signed)


def test_a_proof_reads_back_and_verifies_against_the_saved_checkpoint():
    _, saved, proof = _world()
    text = str(proof)
    assert text.startswith("old 5\n") and "\n\nledger.test/models/0\n13\n" in text
    assert ConsistencyProof.parse(text) == proof
    assert verify_consistency(text, saved, SIGNER.verifier()).checkpoint.size == 13


def test_a_proof_from_another_history_or_key_is_refused():
    tree, saved, proof = _world()
    forked = Checkpoint(saved.origin, saved.size, bytes(32))
    with pytest.raises(Inconsistent, match="not an append-only extension"):
        verify_consistency(str(proof), forked, SIGNER.verifier())
    with pytest.raises(VerificationFailed, match="no valid signature"):
        verify_consistency(str(proof), saved, OTHER.verifier())
    with pytest.raises(VerificationFailed, match="starts at size 5"):
        verify_consistency(str(proof), Checkpoint(saved.origin, 4, tree.root(4)), SIGNER.verifier())
    with pytest.raises(VerificationFailed, match="is of other/0"):
        verify_consistency(str(proof), Checkpoint("other/0", 5, saved.root), SIGNER.verifier())


@pytest.mark.parametrize(
    "mangle, why",
    [
        (lambda t: t.split("\n\n")[0], "no blank line"),
        (lambda t: t.replace("old 5", "old 05"), "'old N'"),
        (lambda t: t.replace("old 5", "old -5"), "'old N'"),
        (lambda t: t.replace("old 5", "old 99"), "above the checkpoint's 13"),
        (lambda t: t.replace("old 5\n", "old 5\n!!notbase64\n"), "not base64"),
        (lambda t: t.replace("old 5\n", "old 5\n" + base64.b64encode(b"short").decode() + "\n"), "not 32 bytes"),
        (lambda t: t.replace("old 5\n", "old 5\n" + (base64.b64encode(bytes(32)).decode() + "\n") * 64), "more than 63"),
        (lambda t: t.split("\n\n")[0] + "\n\nnot a checkpoint\n", "checkpoint is malformed"),
    ],
)
def test_a_malformed_proof_is_refused_in_one_line(mangle, why):
    _, _, proof = _world()
    with pytest.raises(InputError, match=why) as refused:
        ConsistencyProof.parse(mangle(str(proof)))
    assert "\n" not in str(refused.value)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(InputError, match="not UTF-8"):
        ConsistencyProof.parse(b"old 1\n\xff\n\n")
