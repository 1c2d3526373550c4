"""Configuration: which log and which projection database, from URLs.

``LEDGER_LOG`` (or ``--log``) picks the log backend:

* unset, a path, or ``sqlite:///PATH`` — the embedded log (default ``./.ledger/log.db``);
* ``kafka://HOST:PORT[,HOST:PORT]/TOPIC?partitions=N&replication=R`` — Kafka.

``LEDGER_DB`` (or ``--db``) is a SQLAlchemy URL for the projections (default
``sqlite:///./.ledger/views.db``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ledger.errors import InputError
from ledger.log import EventLog

DEFAULT_DIR = Path(".ledger")
DEFAULT_LOG = f"sqlite:///{DEFAULT_DIR / 'log.db'}"
DEFAULT_DB = f"sqlite:///{DEFAULT_DIR / 'views.db'}"
DEFAULT_TOPIC = "ledger.lifecycle"


def log_url(url: str | None = None) -> str:
    return url or os.environ.get("LEDGER_LOG") or DEFAULT_LOG


def db_url(url: str | None = None) -> str:
    return url or os.environ.get("LEDGER_DB") or DEFAULT_DB


def _sqlite_path(url: str) -> str:
    path = url.split("://", 1)[1] if "://" in url else url
    if urlsplit(url).scheme == "sqlite":
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
    if not path:
        raise InputError(f"log URL {url!r} names no file")
    return path


def open_log(url: str | None = None, *, must_exist: bool = False) -> EventLog:
    """The log named by ``url`` (or ``LEDGER_LOG``, or the embedded default).

    ``must_exist`` is for auditors' commands: an embedded log file that is not there
    is an error (a mistyped path must not verify as an empty, intact ledger)."""
    url = log_url(url)
    parts = urlsplit(url)
    if parts.scheme in ("", "sqlite", "file"):
        from ledger.backends.sqlite import SqliteLog

        path = _sqlite_path(url)
        if must_exist and not Path(path).exists():
            from ledger.errors import NotFound

            raise NotFound(f"no ledger log at {path} (check --log / LEDGER_LOG)")
        return SqliteLog(path)
    if parts.scheme == "kafka":
        from ledger.backends.kafka import KafkaLog

        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        topic = parts.path.lstrip("/") or DEFAULT_TOPIC
        if not parts.netloc:
            raise InputError(f"log URL {url!r} names no broker (kafka://HOST:PORT/TOPIC)")
        try:
            partitions = int(query.pop("partitions", 3))
            replication = int(query.pop("replication", 1))
        except ValueError as exc:
            raise InputError(f"log URL {url!r}: partitions and replication are integers") from exc
        return KafkaLog(
            bootstrap_servers=parts.netloc.split(","),
            topic=topic,
            partitions=partitions,
            replication=replication,
            **query,
        )
    raise InputError(f"unknown log URL scheme {parts.scheme!r} in {url!r}: use sqlite:/// or kafka://")
