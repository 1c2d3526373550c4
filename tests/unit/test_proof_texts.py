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


def test_a_witness_cosignature_key_is_never_the_logs_key():
    """Only the log's Ed25519 (type 0x01) signature makes a checkpoint the log's:
    a witness's cosignature/v1 (type 0x04) key given as the log's key is bad input,
    and a checkpoint carrying only a witness's cosignature is no checkpoint of the log."""
    from ledger import notes
    from ledger.checkpoints import require_signatures

    witness = Signer.generate("witness.test", notes.ALG_COSIGNATURE)
    _, saved, proof = _world()
    cosigned = notes.cosign(proof.checkpoint, witness)
    witness_only = notes.SignedCheckpoint(cosigned.checkpoint, notes.Note(cosigned.note.text, cosigned.note.signatures[1:]))
    for signed in (cosigned, witness_only):
        with pytest.raises(InputError, match="witness key"):
            require_signatures(signed, witness.verifier())
    with pytest.raises(InputError, match="witness key"):
        verify_consistency(str(ConsistencyProof(proof.old_size, proof.path, witness_only)), saved, witness.verifier())
    with pytest.raises(VerificationFailed, match="no valid signature of the log key"):
        require_signatures(witness_only, SIGNER.verifier(), [witness.verifier()], 1)
    # A plain Ed25519 key of another name signed the text (a witness without
    # --witness): it names another log than the checkpoint's origin.
    plain = Signer.generate("witness.test")
    other_only = notes.SignedCheckpoint(proof.checkpoint.checkpoint, notes.parse(notes.sign(proof.checkpoint.note.text, plain)))
    with pytest.raises(VerificationFailed, match="origin"):
        require_signatures(other_only, plain.verifier())
