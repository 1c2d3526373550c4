"""Datasets on disk: reading a CSV file, the content-addressed data store that keeps
checked data for retraining, and reading a snapshot's data back.

The checks themselves are pure and live in :mod:`ledger.data.contracts`; its names
are importable from here too, so ``datasets.validate(datasets.read_csv(path),
contract)`` reads as one story.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ledger import config
from ledger.data.contracts import (
    MISSING_TOKENS,
    NUMERIC_DTYPES,
    QUANTILE_COUNT,
    Column,
    Dataset,
    RawTable,
    default_snapshot_id,
    feature_stats,
    parse_csv_text,
    parse_header,
    snapshot_event,
    validate,
)
from ledger.errors import InputError, NotFound
from ledger.events import DataSnapshotted
from ledger.files import write_once

__all__ = [
    "MISSING_TOKENS", "NUMERIC_DTYPES", "QUANTILE_COUNT", "Column", "Dataset", "RawTable", "DataStore",
    "default_data_dir", "default_snapshot_id", "feature_stats", "load_snapshot", "parse_csv_text",
    "parse_header", "path_of", "read_csv", "snapshot_event", "validate",
]


def read_csv(path: str | Path) -> RawTable:
    """Read a CSV file (UTF-8, a BOM is tolerated)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"data file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read data file {str(path)!r}: {exc}") from exc
    return parse_csv_text(text, source=str(path))


# --- storage (I/O) ------------------------------------------------------------


def default_data_dir() -> Path:
    """``LEDGER_DATA_DIR`` or ``./.ledger/data``."""
    return Path(os.environ.get("LEDGER_DATA_DIR") or config.DEFAULT_DIR / "data")


class DataStore:
    """A content-addressed folder of canonical CSV files: ``<sha256>.csv``.

    Files are written once (to a temporary name, then renamed) and never changed,
    so a snapshot's URI always names the exact bytes its content hash describes."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_data_dir()

    def put(self, data: Dataset) -> str:
        """Store ``data``'s canonical bytes; return the file URI."""
        content = data.canonical_bytes()
        digest = hashlib.sha256(content).hexdigest()
        target = (self.root / f"{digest}.csv").resolve()
        write_once(target, content, "the data")
        return target.as_uri()


def path_of(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "":
        return Path(uri)
    raise InputError(f"cannot read data from {uri!r}: only file URIs and paths are supported")


def load_snapshot(event: DataSnapshotted) -> Dataset:
    """Read a snapshot's data back from its URI and check it is the data the
    snapshot describes (same content hash): stored data may not change silently."""
    if not event.uri:
        raise NotFound(f"snapshot {event.snapshot_id!r} records no data URI")
    path = path_of(event.uri)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise NotFound(f"data of snapshot {event.snapshot_id!r} is unreadable at {event.uri}: {exc}") from exc
    data = validate(parse_csv_text(content.decode("utf-8-sig"), source=str(path)), event.contract)
    if data.content_hash != event.content_hash:
        raise InputError(
            f"data of snapshot {event.snapshot_id!r} at {event.uri} has hash {data.content_hash}, "
            f"but the snapshot recorded {event.content_hash}: the file was changed"
        )
    return data
