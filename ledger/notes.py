"""C2SP signed notes (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint)
and inclusion receipts (c2sp.org/tlog-proof), with Ed25519 from ``cryptography``.

Key texts are those of Go's ``golang.org/x/mod/sumdb/note`` (the reference
implementation the specification came from):

* verifier key: ``name+hhhhhhhh+base64(0x01 || public key)``
* signer key:   ``PRIVATE+KEY+name+hhhhhhhh+base64(0x01 || seed)``

where ``hhhhhhhh`` is the key id: the first four bytes of
SHA-256(name || 0x0A || 0x01 || public key), in hex. A signature line is
``— name base64(key id || signature)``. ``tests/unit/test_notes.py`` reproduces
Go's own test vectors byte for byte.

Witnesses may use c2sp.org/tlog-cosignature Ed25519 keys instead (algorithm byte
0x04 in the key text and key id): their signature line carries
``key id || 8-byte timestamp || signature`` over ``cosignature/v1``, ``time T``
and the checkpoint text.

Pure: no I/O, no ledger imports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import unicodedata
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
"""A signed-note Ed25519 key: signs the note text itself."""
ALG_COSIGNATURE = 0x04
"""A c2sp.org/tlog-cosignature Ed25519 key: signs ``cosignature/v1``, a
``time`` line and the checkpoint text; the signature carries the timestamp."""
_ALGORITHMS = {ALG_ED25519: "Ed25519", ALG_COSIGNATURE: "Ed25519 cosignature/v1"}
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "  # an em dash and a space
_SPACE = re.compile(r"\s")
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn"}


class NoteError(ValueError):
    """A key, note, checkpoint or receipt is malformed, or a signature is bad."""


def _valid_name(name: str) -> bool:
    # The spec forbids only spaces and '+'; control and format characters (escape
    # sequences, bidi overrides, zero-width spaces) are refused too, because a key
    # name is an identity printed to operators and pinned by witnesses.
    return (
        bool(name)
        and "+" not in name
        and not _SPACE.search(name)
        and not any(unicodedata.category(c) in _HIDDEN for c in name)
    )


def key_id(name: str, public_key: bytes, algorithm: int = ALG_ED25519) -> int:
    """The 32-bit key id: SHA-256(name || 0x0A || algorithm || public key)[:4]."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs (c2sp.org/tlog-cosignature)."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError(f"{what} is not base64") from exc


def _parse_id(text: str) -> int:
    if not re.fullmatch(r"[0-9a-f]{8}", text):
        raise NoteError("malformed key: the key id is 8 lowercase hex digits")
    return int(text, 16)


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: int
    public_key: bytes
    algorithm: int = ALG_ED25519

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """A verifier from its key text, ``name+id+base64``."""
        vkey = vkey.strip()
        parts = vkey.split("+", 2)  # base64 may hold '+'
        if len(parts) != 3 or not _valid_name(parts[0]):
            raise NoteError("malformed verifier key: expected name+keyid+base64")
        name, ident, key = parts[0], _parse_id(parts[1]), _b64decode(parts[2], "the verifier key")
        if len(key) != 33:
            raise NoteError("malformed verifier key: not 1 + 32 bytes")
        if key[0] not in _ALGORITHMS:
            raise NoteError(f"verifier key uses unknown algorithm {key[0]}")
        if key_id(name, key[1:], key[0]) != ident:
            raise NoteError("verifier key id does not match its name and key")
        return cls(name, ident, key[1:], key[0])

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([self.algorithm]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify_note(self, text: str, raw: bytes) -> bool:
        """Whether ``raw`` (a signature line's bytes after the key id) is this
        key's valid signature of the note ``text``."""
        if self.algorithm == ALG_COSIGNATURE:
            if len(raw) != 8 + 64:
                return False
            timestamp = int.from_bytes(raw[:8], "big")
            return timestamp < 2**63 and self.verify(cosigned_message(text, timestamp), raw[8:])
        return self.verify(text.encode("utf-8"), raw)


@dataclass(frozen=True)
class Signer:
    name: str
    key_id: int
    seed: bytes = field(repr=False)
    algorithm: int = ALG_ED25519

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """A signer from its key text, ``PRIVATE+KEY+name+id+base64``."""
        skey = skey.strip()
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _valid_name(parts[2]):
            raise NoteError("malformed signer key: expected PRIVATE+KEY+name+keyid+base64")
        name, ident, key = parts[2], _parse_id(parts[3]), _b64decode(parts[4], "the signer key")
        if len(key) != 33:
            raise NoteError("malformed signer key: not 1 + 32 bytes")
        if key[0] not in _ALGORITHMS:
            raise NoteError(f"signer key uses unknown algorithm {key[0]}")
        signer = cls(name, ident, key[1:], key[0])
        if signer.verifier().key_id != ident:
            raise NoteError("signer key id does not match its name and key")
        return signer

    @classmethod
    def generate(cls, name: str, algorithm: int = ALG_ED25519) -> Signer:
        """A new key; ``ALG_COSIGNATURE`` for a witness's tlog-cosignature key."""
        if not _valid_name(name):
            raise NoteError(f"key name {name!r} must be non-empty, without spaces, '+' or control characters")
        if algorithm not in _ALGORITHMS:
            raise NoteError(f"unknown key algorithm {algorithm}")
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes_raw()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(name, key_id(name, public, algorithm), seed, algorithm)

    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def verifier(self) -> Verifier:
        public = self._private().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, key_id(self.name, public, self.algorithm), public, self.algorithm)

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([self.algorithm]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        return self._private().sign(message)

    def sign_note(self, text: str, timestamp: int | None = None) -> bytes:
        """The bytes of this key's signature line after the key id."""
        if self.algorithm == ALG_COSIGNATURE:
            timestamp = int(time.time()) if timestamp is None else timestamp
            return timestamp.to_bytes(8, "big") + self.sign(cosigned_message(text, timestamp))
        return self.sign(text.encode("utf-8"))


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    base64: str

    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {self.base64}\n"

    @property
    def key(self) -> str:
        """``name+key id``, as a verifier key's text begins."""
        return f"{self.name}+{self.key_id:08x}"

    @property
    def cosigned_at(self) -> int | None:
        """The Unix time a c2sp.org/tlog-cosignature line carries (key id, 8-byte
        time, 64-byte signature); None for a plain Ed25519 signature. Read from the
        line's shape, not verified: only the key tells."""
        raw = base64.b64decode(self.base64)
        return int.from_bytes(raw[4:12], "big") if len(raw) == 4 + 8 + 64 else None


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]
    """Every signature line, in order, verified or not."""

    def signed_by(self, verifier: Verifier) -> bool:
        """Whether a valid signature of ``verifier``'s key is on the note."""
        for sig in self.signatures:
            if sig.name == verifier.name and sig.key_id == verifier.key_id:
                raw = base64.b64decode(sig.base64)
                if verifier.verify_note(self.text, raw[4:]):
                    return True
        return False

    def signed_by_count(self, verifiers: list[Verifier]) -> int:
        """How many distinct keys of ``verifiers`` validly signed the note."""
        distinct = {(v.name, v.key_id, v.public_key): v for v in verifiers}
        return sum(1 for v in distinct.values() if self.signed_by(v))

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign(text: str, *signers: Signer, existing: tuple[Signature, ...] = (), timestamp: int | None = None) -> str:
    """The signed note: ``text`` (which must end with a newline), a blank line,
    the ``existing`` signatures not made again by a new signer, then the new ones
    (Go's ``note.Sign`` order)."""
    if not text.endswith("\n"):
        raise NoteError("malformed note: the text must end with a newline")
    _check_text(text)
    new = []
    for signer in signers:
        raw = signer.key_id.to_bytes(4, "big") + signer.sign_note(text, timestamp)
        new.append(Signature(signer.name, signer.key_id, base64.b64encode(raw).decode()))
    again = {(s.name, s.key_id) for s in new}
    kept = [s for s in existing if (s.name, s.key_id) not in again]
    return str(Note(text, tuple(kept + new)))


def _check_text(text: str) -> None:
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise NoteError("malformed note: control characters other than newline")


def parse(message: str | bytes) -> Note:
    """Split a signed note into its text and signature lines, checking the form
    (not the signatures: see :meth:`Note.signed_by`)."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed note: not UTF-8") from exc
    _check_text(message)
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or the last does not end with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed note: a signature line starts with '— '")
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(encoded, "a signature") if encoded else b""
        if not _valid_name(name) or len(raw) < 5:
            raise NoteError("malformed note: bad signature line")
        signatures.append(Signature(name, int.from_bytes(raw[:4], "big"), encoded))
        if len(signatures) > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(signatures))


def open_note(message: str | bytes, verifier: Verifier) -> Note:
    """Parse ``message`` and require a valid signature of ``verifier``. A signature
    line that names the key but does not verify is an error (as in Go)."""
    note = parse(message)
    named = [s for s in note.signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    if not named:
        raise NoteError(f"the note is not signed by {verifier.name}+{verifier.key_id:08x}")
    if not note.signed_by(verifier):
        raise NoteError(f"invalid signature for key {verifier.name}+{verifier.key_id:08x}")
    return note


# --------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("malformed checkpoint: fewer than three lines, or no final newline")
        origin, size, root, *extensions = lines[:-1]
        if not origin:
            raise NoteError("malformed checkpoint: empty origin")
        if not re.fullmatch(r"0|[1-9][0-9]*", size) or int(size) >= 2**64:
            raise NoteError("malformed checkpoint: the tree size is a decimal number without leading zeros")
        digest = _b64decode(root, "the checkpoint's root hash")
        if len(digest) != 32:
            raise NoteError("malformed checkpoint: the root hash is not 32 bytes")
        if any(not line for line in extensions):
            raise NoteError("malformed checkpoint: empty extension line")
        return cls(origin, int(size), digest, tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note

    @classmethod
    def parse(cls, message: str | bytes) -> SignedCheckpoint:
        note = parse(message)
        return cls(Checkpoint.parse_text(note.text), note)

    def __str__(self) -> str:
        return str(self.note)


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> SignedCheckpoint:
    return SignedCheckpoint.parse(sign(checkpoint.text(), signer))


def cosign(signed: SignedCheckpoint, signer: Signer, timestamp: int | None = None) -> SignedCheckpoint:
    """Add ``signer``'s signature to a checkpoint, keeping the others: a
    tlog-cosignature (with ``timestamp``, default now) for an ``ALG_COSIGNATURE`` key."""
    return SignedCheckpoint.parse(sign(signed.note.text, signer, existing=signed.note.signatures, timestamp=timestamp))


# --------------------------------------------------------------- receipts

PROOF_HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class Receipt:
    """An inclusion proof in the c2sp.org/tlog-proof layout."""

    index: int
    path: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = None

    def __str__(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.path)
        return "\n".join(lines) + "\n\n" + str(self.checkpoint)

    @classmethod
    def parse(cls, text: str | bytes) -> Receipt:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NoteError("malformed receipt: not UTF-8") from exc
        head, sep, checkpoint = text.partition("\n\n")
        if not sep:
            raise NoteError("malformed receipt: no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != PROOF_HEADER:
            raise NoteError(f"malformed receipt: the first line is not {PROOF_HEADER}")
        lines = lines[1:]
        extra = None
        if lines and lines[0].startswith("extra "):
            extra = _b64decode(lines[0][6:], "the receipt's extra data")
            lines = lines[1:]
        if not lines or not re.fullmatch(r"index (0|[1-9][0-9]*)", lines[0]):
            raise NoteError("malformed receipt: missing 'index N' line")
        index = int(lines[0][6:])
        path = []
        for line in lines[1:]:
            digest = _b64decode(line, "a receipt hash")
            if len(digest) != 32:
                raise NoteError("malformed receipt: a hash is not 32 bytes")
            path.append(digest)
        return cls(index, tuple(path), SignedCheckpoint.parse(checkpoint), extra)
