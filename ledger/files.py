"""Files written once and never changed (stored data snapshots and model
artifacts), and the TOML configuration files the consumers read."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path

from ledger.errors import BackendError, InputError


def write_once(target: Path, content: bytes, what: str) -> None:
    """Write ``content`` to ``target`` atomically unless it exists already.

    The name carries the content's hash, so an existing file already holds these
    bytes; writing to a temporary name and renaming means a reader never sees half
    a file, even if the writer dies."""
    if target.exists():
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, 0o644)  # temporary files start private; these are shared
        os.replace(tmp.name, target)
    except OSError as exc:
        raise BackendError(f"cannot write {what} under {target.parent}: {exc}") from exc


def read_toml(path: Path | str, what: str) -> dict:
    """The TOML file ``path`` as a dict; ``what`` names it in the one-line
    :class:`InputError` an unreadable or malformed file gets."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"cannot read {what} {path}: not valid TOML: {exc}") from exc
