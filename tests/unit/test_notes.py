"""Signed notes, checkpoints and receipts against Go's sumdb/note test vectors
(golang.org/x/mod/sumdb/note/note_test.go), the C2SP tlog-checkpoint example, and
transparency-dev/merkle's tlog-proof tests."""

from __future__ import annotations

import base64

import pytest

from ledger import notes
from ledger.notes import Checkpoint, NoteError, Receipt, SignedCheckpoint, Signer, Verifier

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"


def test_go_key_pair_parses_and_matches():
    signer, verifier = Signer.parse(PETER_SKEY), Verifier.parse(PETER_VKEY)
    assert signer.verifier() == verifier
    assert (verifier.name, verifier.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert str(signer) == PETER_SKEY and str(verifier) == PETER_VKEY


def test_signing_reproduces_go_byte_for_byte():
    assert notes.sign(TEXT, Signer.parse(PETER_SKEY)) == TEXT + "\n" + PETER_SIG


def test_signing_again_replaces_the_old_signature_of_the_same_key():
    stale = notes.Signature("PeterNeumann", 0xC74F20A3, "BADSIGN=")
    assert notes.sign(TEXT, Signer.parse(PETER_SKEY), existing=(stale,)) == TEXT + "\n" + PETER_SIG


def test_open_verifies_the_known_key_and_ignores_unknown_ones():
    message = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    note = notes.open_note(message, Verifier.parse(PETER_VKEY))
    assert note.text == TEXT
    assert note.signed_by_count([Verifier.parse(PETER_VKEY), Verifier.parse(ENOCH_VKEY)]) == 2
    with pytest.raises(NoteError, match="not signed by"):
        notes.open_note(TEXT + "\n" + PETER_SIG, Verifier.parse(ENOCH_VKEY))


def test_a_corrupted_signature_is_refused():
    corrupted = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError):
        notes.open_note(TEXT + "\n" + corrupted, Verifier.parse(PETER_VKEY))
    with pytest.raises(NoteError, match="invalid signature"):
        notes.open_note(TEXT.replace("problem", "Problem", 1) + "\n" + PETER_SIG, Verifier.parse(PETER_VKEY))


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_notes_are_refused(message):
    with pytest.raises(NoteError):
        notes.open_note(message, Verifier.parse(PETER_VKEY))
    with pytest.raises(NoteError):
        notes.open_note(b"\xff" + message.encode(), Verifier.parse(PETER_VKEY))


def test_every_mangled_key_is_refused():
    bad = []
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        try:
            Verifier.parse(mangled)
            bad.append(mangled)
        except NoteError:
            pass
    for cut in range(1, len(PETER_VKEY)):
        for text in (PETER_VKEY[:cut], PETER_VKEY[cut:]):
            try:
                Verifier.parse(text)
                bad.append(text)
            except NoteError:
                pass
    for i in range(len(PETER_SKEY)):
        mangled = PETER_SKEY[:i] + chr(ord(PETER_SKEY[i]) + 1) + PETER_SKEY[i + 1 :]
        try:
            Signer.parse(mangled)
            bad.append(mangled)
        except NoteError:
            pass
    assert bad == []
    # Go's: a wrong-length key and an unknown algorithm, each with an adjusted key id.
    for text in ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"):
        with pytest.raises(NoteError):
            Verifier.parse(text)


def test_generated_keys_round_trip():
    signer = Signer.generate("ledger.example/log")
    again = Signer.parse(str(signer))
    assert again == signer and Verifier.parse(str(signer.verifier())) == signer.verifier()
    signed = notes.sign("hello\n", signer)
    assert notes.open_note(signed, signer.verifier()).text == "hello\n"
    with pytest.raises(NoteError):
        Signer.generate("two words")


def test_the_c2sp_checkpoint_example_parses():
    example = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    )
    signed = SignedCheckpoint.parse(example)
    assert signed.checkpoint.origin == "example.com/behind-the-sofa"
    assert signed.checkpoint.size == 20852163
    assert signed.checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert str(signed) == example
    assert signed.checkpoint.text() == example.split("\n\n")[0] + "\n"


@pytest.mark.parametrize(
    "text",
    ["origin\n12\n", "origin\n012\n" + "A" * 43 + "=\n", "origin\n-1\n" + "A" * 43 + "=\n", "\n3\n" + "A" * 43 + "=\n", "o\n3\nAAAA\n", "o\n3\n" + "A" * 43 + "=\n\n"],
)
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(NoteError):
        Checkpoint.parse_text(text)


def test_checkpoint_signed_and_cosigned():
    log, witness = Signer.generate("log.example/ledger"), Signer.generate("witness.example")
    checkpoint = Checkpoint("log.example/ledger/0", 5, bytes(range(32)), ("extension line",))
    signed = notes.sign_checkpoint(checkpoint, log)
    assert SignedCheckpoint.parse(str(signed)).checkpoint == checkpoint
    cosigned = notes.cosign(signed, witness)
    assert cosigned.note.signed_by(log.verifier()) and cosigned.note.signed_by(witness.verifier())
    assert cosigned.note.signed_by_count([witness.verifier(), witness.verifier()]) == 1
    assert notes.cosign(cosigned, witness).note.signatures == cosigned.note.signatures


def test_receipt_layout_round_trips():
    log = Signer.generate("log.example/ledger")
    signed = notes.sign_checkpoint(Checkpoint("log.example/ledger/0", 10, bytes(32)), log)
    path = (bytes([1]) * 32, bytes([2]) * 32)
    receipt = Receipt(5, path, signed)
    text = str(receipt)
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 5\n" + base64.b64encode(path[0]).decode() + "\n")
    assert "\n\n" + str(signed) in text
    assert Receipt.parse(text) == receipt
    assert Receipt.parse(str(Receipt(0, (), signed, b"extra"))).extra == b"extra"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wrong-header\nindex 0\n\ncheckpoint\n", "first line"),
        ("c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n", "base64"),
        ("c2sp.org/tlog-proof@v1\n\n\ncheckpoint\n", "index"),
        ("c2sp.org/tlog-proof@v1\nindex notanumber\n\ncheckpoint\n", "index"),
        ("c2sp.org/tlog-proof@v1\nindex -5\n\ncheckpoint\n", "index"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\ncheckpoint\n", "base64"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(64)).decode() + "\n\ncheckpoint\n", "32 bytes"),
    ],
)
def test_malformed_receipts_are_refused(text, message):
    with pytest.raises(NoteError, match=message):
        Receipt.parse(text)


# c2sp.org/tlog-cosignature: the example's witness line and the Ed25519 layout.
COSIGNED_EXAMPLE_LINE = "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"


def test_the_spec_cosignature_line_carries_its_timestamp():
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    note = notes.parse(text + "\n" + COSIGNED_EXAMPLE_LINE)
    raw = base64.b64decode(note.signatures[0].base64)
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == 1679315147  # the spec's "time 1679315147"


def test_a_cosignature_signs_the_spec_message_and_only_verifies_as_one():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    witness = Signer.generate("witness.example.com/w1", notes.ALG_COSIGNATURE)
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    log = Signer.generate("example.com/behind-the-sofa")
    signed = notes.cosign(notes.sign_checkpoint(Checkpoint.parse_text(text), log), witness, timestamp=1679315147)
    line = signed.note.signatures[-1]
    raw = base64.b64decode(line.base64)
    assert raw[:4] == witness.key_id.to_bytes(4, "big") and int.from_bytes(raw[4:12], "big") == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + text.encode()
    Ed25519PublicKey.from_public_bytes(witness.verifier().public_key).verify(raw[12:], message)  # raises if not
    vkey = str(witness.verifier())
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert Verifier.parse(vkey) == witness.verifier() and Signer.parse(str(witness)) == witness
    assert signed.note.signed_by(Verifier.parse(vkey)) and signed.note.signed_by(log.verifier())
    # The same public key as a plain note key has another id and does not verify it.
    plain = Verifier(witness.name, notes.key_id(witness.name, witness.verifier().public_key), witness.verifier().public_key)
    assert plain.key_id != witness.key_id and not signed.note.signed_by(plain)
    # A changed timestamp breaks the signature.
    forged = base64.b64encode(raw[:4] + (1679315148).to_bytes(8, "big") + raw[12:]).decode()
    tampered = notes.Note(signed.note.text, signed.note.signatures[:-1] + (notes.Signature(line.name, line.key_id, forged),))
    assert not tampered.signed_by(witness.verifier())
