"""A witness: an independent party that co-signs a log's checkpoints, each only
after checking it is consistent with the last one it co-signed for that origin.

The witness has its own key and its own state — a small JSON file it alone
writes, holding per origin the last checkpoint it co-signed — never anything in
the ledger's storage: a log operator who rewrites the log cannot rewrite what the
witness remembers. A log that shows it a checkpoint inconsistent with that memory
(a fork, a rewrite, a truncation) is refused with :class:`Inconsistent`, and the
witness signs nothing for that origin again until a person looks.

A witness key made with ``keys generate --witness`` co-signs in the
c2sp.org/tlog-cosignature Ed25519 format (``cosignature/v1``, a timestamp, the
checkpoint); a plain signed-note key signs the checkpoint text as the first
transparency-dev witnesses did. An auditor counts either with
``verify --witness-key K --min-witnesses N``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ledger import merkle, notes
from ledger.checkpoints import Inconsistent, VerificationFailed, require_log_key, require_signatures
from ledger.errors import BackendError, InputError
from ledger.notes import NoteError, SignedCheckpoint, Signer, Verifier



class WitnessState:
    """``{origin: last co-signed checkpoint text}`` in a JSON file, replaced
    atomically on every change."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"the witness state {self.path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.get("cosigned", {}).values()):
            raise InputError(f"the witness state {self.path} is not a witness state file")
        return dict(data.get("cosigned", {}))

    def last(self, origin: str) -> SignedCheckpoint | None:
        text = self.load().get(origin)
        if text is None:
            return None
        try:
            return SignedCheckpoint.parse(text)
        except NoteError as exc:
            raise InputError(f"the witness state {self.path} holds a malformed checkpoint for {origin}: {exc}") from exc

    def save(self, origin: str, signed: SignedCheckpoint) -> None:
        state = self.load()
        state[origin] = str(signed)
        body = json.dumps({"format": "ledger-witness-state/1", "cosigned": state}, indent=2, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=".tmp-", delete=False, encoding="utf-8") as tmp:
                tmp.write(body)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, self.path)
        except OSError as exc:
            raise BackendError(f"cannot write the witness state {self.path}: {exc}") from exc


ProofSource = Callable[[SignedCheckpoint, int], list[bytes]]
"""Given the new checkpoint and the size the witness last co-signed, the
consistency proof between them (from the log; the witness trusts none of it)."""


class Witness:
    def __init__(self, signer: Signer, state: WitnessState, log_key: Verifier):
        require_log_key(log_key, "--log-key")
        self.signer = signer
        self.state = state
        self.log_key = log_key

    def cosign(self, signed: SignedCheckpoint, proof: list[bytes] | ProofSource) -> SignedCheckpoint:
        """Co-sign ``signed`` if the log signed it and it is consistent with the
        last checkpoint co-signed for its origin; the co-signed checkpoint (the
        log's signature and every other one kept) is remembered and returned."""
        new = signed.checkpoint
        require_signatures(signed, self.log_key)
        last = self.state.last(new.origin)
        if last is not None:
            old = last.checkpoint
            path = proof(signed, old.size) if callable(proof) else proof
            try:
                merkle.verify_consistency(old.size, new.size, path, old.root, new.root)
            except merkle.ProofError as exc:
                message = (
                    f"witness {self.signer.name} refuses checkpoint {new.origin}@{new.size}: it is not "
                    f"consistent with {new.origin}@{old.size}, which this witness co-signed ({exc}); "
                    "the log was rewritten or forked"
                )
                raise Inconsistent(message) from exc  # not also logged: the caller says it once
            if old.size == new.size and last.note.signed_by(self.signer.verifier()):
                merged = notes.cosign(SignedCheckpoint(new, signed.note), self.signer)
                return merged
        cosigned = notes.cosign(signed, self.signer)
        if not cosigned.note.signed_by(self.signer.verifier()):  # pragma: no cover - our own signature
            raise VerificationFailed("the witness's own signature does not verify")
        self.state.save(new.origin, cosigned)
        return cosigned
