"""Who may call the ledger service, and what each may record.

The operator keeps a TOML file of principals::

    [principals.alice]
    token_sha256 = "9f2c…"          # written by `ledger principals add`
    roles = ["approve", "read"]

    [principals.pipeline]
    token_sha256 = "…"
    roles = ["snapshot", "train", "evaluate", "act-as", "read"]

Roles: ``snapshot``, ``train``, ``evaluate``, ``approve`` (approve and reject),
``deploy:ENV`` or ``deploy:*``, ``drift``, ``retire``, ``read`` (the views), and
``act-as`` (may record events whose actor is someone else: a pipeline runner).

Why SHA-256 and not a password hash: tokens are 256 random bits made by
:func:`new_token`, not passwords a person chose. Nobody can guess a preimage of
such a token, so a slow KDF (scrypt, argon2) adds nothing but its cost, paid on
every request. A token lost with the file is as safe as its hash is: the file
holds no token.

The file is re-read when its modification time or size changes (checked at most
once a second), so adding, removing or rotating a principal needs no restart. A
file that fails to load on reload keeps the principals loaded before, and the
failure is logged: a typo must not lock every client out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import InputError
from ledger.events import SHA256_HEX
from ledger.identity import same_person

log = logging.getLogger(__name__)

ACTION_ROLES = ("snapshot", "train", "evaluate", "approve", "drift", "retire")
ROLES = (*ACTION_ROLES, "read", "act-as")
ROLE_OF_EVENT = {
    "DataSnapshotted": "snapshot",
    "ModelTrained": "train",
    "ModelEvaluated": "evaluate",
    "ModelApproved": "approve",
    "ApprovalRejected": "approve",
    "DriftDetected": "drift",
    "ModelRetired": "retire",
    # ModelDeployed: deploy:<environment>, see Principal.role_for
}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@\-]{0,127}")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}|\*")
TOKEN_PREFIX = "ldg_"


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_role(role: str) -> str:
    if role in ROLES:
        return role
    kind, colon, environment = role.partition(":")
    if kind == "deploy" and colon and _ENVIRONMENT.fullmatch(environment):
        return role
    raise InputError(f"unknown role {role!r}: use one of {', '.join(ROLES)}, deploy:ENV or deploy:*")


@dataclass(frozen=True)
class Principal:
    name: str
    token_sha256: str
    roles: frozenset[str]

    @staticmethod
    def role_for(event_type: str, environment: str | None = None) -> str:
        if event_type == "ModelDeployed":
            return f"deploy:{environment}"
        return ROLE_OF_EVENT[event_type]

    def may(self, role: str) -> bool:
        if role in self.roles:
            return True
        return role.startswith("deploy:") and "deploy:*" in self.roles


def _parse(text: str, where: str) -> dict[str, Principal]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML: {exc}") from exc
    table = data.get("principals", {})
    if not isinstance(table, dict) or set(data) - {"principals"}:
        raise InputError(f"{where}: the file holds one table, [principals.NAME]")
    found: dict[str, Principal] = {}
    hashes: set[str] = set()
    for name, entry in table.items():
        if not NAME.fullmatch(name):
            raise InputError(f"{where}: {name!r} is not a principal name (letters, digits, . _ @ -)")
        if not isinstance(entry, dict):
            raise InputError(f"{where}: principals.{name} must be a table")
        digest = entry.get("token_sha256")
        if not isinstance(digest, str) or not re.fullmatch(SHA256_HEX, digest):
            raise InputError(f"{where}: principals.{name}.token_sha256 must be 64 lowercase hex digits")
        if digest in hashes:
            raise InputError(f"{where}: principals.{name} shares its token with another principal")
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InputError(f"{where}: principals.{name}.roles must be a list of strings")
        unknown = set(entry) - {"token_sha256", "roles"}
        if unknown:
            raise InputError(f"{where}: principals.{name} has unknown keys {sorted(unknown)}")
        hashes.add(digest)
        found[name] = Principal(name, digest, frozenset(check_role(r) for r in roles))
    return found


class Principals:
    """The principals file, re-read when it changes."""

    def __init__(self, path: str | Path, *, check_every: float = 1.0):
        self.path = Path(path)
        self.check_every = check_every
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._by_hash = self._load()
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int]:
        try:
            info = self.path.stat()
        except OSError as exc:
            raise InputError(f"cannot read the principals file {self.path}: {exc}") from exc
        return info.st_mtime_ns, info.st_size

    def _load(self) -> dict[str, Principal]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the principals file {self.path}: {exc}") from exc
        return {p.token_sha256: p for p in _parse(text, str(self.path)).values()}

    def reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return
        with self._lock:
            self._checked = now
            try:
                stamp = self._file_stamp()
                if stamp == self._stamp:
                    return
                self._by_hash = self._load()
                self._stamp = stamp
                log.info("reloaded %d principals from %s", len(self._by_hash), self.path)
            except InputError as exc:
                log.error("keeping the principals loaded before: %s", exc)

    def authenticate(self, token: str) -> Principal | None:
        self.reload_if_changed()
        digest = token_hash(token)
        principal = self._by_hash.get(digest)
        # The lookup is by a hash of the secret, so its timing reveals nothing
        # about the token; the constant-time compare is belt and braces.
        if principal is not None and hmac.compare_digest(principal.token_sha256, digest):
            return principal
        return None

    def __len__(self) -> int:
        return len(self._by_hash)


def add_principal(path: str | Path, name: str, roles: list[str], *, replace: bool = False) -> str:
    """Add (or, with ``replace``, re-key) a principal; returns its new token, which
    is stored nowhere. The file is rewritten atomically, readable by its owner only."""
    import tomli_w

    path = Path(path)
    if not NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a principal name (letters, digits, . _ @ -; at most 128)")
    checked = sorted({check_role(r) for r in roles})
    if not checked:
        raise InputError("give the principal at least one --role")
    data: dict = {"principals": {}}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        _parse(text, str(path))  # refuse to rewrite a file that does not load
        data = tomllib.loads(text) or {"principals": {}}
        data.setdefault("principals", {})
    if name in data["principals"] and not replace:
        raise InputError(f"principal {name!r} already exists in {path} (use --replace to issue a new token)")
    alias = next((other for other in data["principals"] if other != name and same_person(other, name)), None)
    if alias is not None:
        # Four eyes compares principals as people: two tokens for one person would
        # let them act as two.
        raise InputError(f"principal {name!r} is the same person as {alias!r} in {path}: use that principal (--replace to re-key it)")
    token = new_token()
    data["principals"][name] = {"token_sha256": token_hash(token), "roles": checked}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        tomli_w.dump(data, out)
    os.replace(tmp, path)
    return token
