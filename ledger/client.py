"""The small Python client services use to record lifecycle actions.

    from ledger.client import Ledger
    from ledger.events import ModelDeployed

    with Ledger.open() as ledger:                 # LEDGER_LOG or ./.ledger/log.db
        accepted = ledger.emit(ModelDeployed(model="churn", version=3,
                                             actor="deployer", environment="production"))
        print(accepted.event.sequence, accepted.hash)

``emit`` answers synchronously: it returns :class:`ledger.append.Accepted` once the
event is durable in the log, or raises :class:`ledger.errors.RuleViolation` (nothing
written) — :class:`ledger.errors.ConflictError` when another writer won a race.

With ``LEDGER_URL`` (and ``LEDGER_TOKEN``) set, ``Ledger.open()`` speaks to the
ledger service instead (:mod:`ledger.http_client`), with the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger import codec, config
from ledger.append import Accepted, Appender, fold
from ledger.errors import InputError
from ledger.events import BY_CLI_NAME, BY_TYPE, Event
from ledger.log import EventLog
from ledger.rules import ModelState
from ledger.verify import Report, verify


def event_class(name: str) -> type[Event]:
    """The event class for a CLI name (``deploy``) or an event type (``ModelDeployed``)."""
    cls = BY_CLI_NAME.get(name) or BY_TYPE.get(name)
    if cls is None:
        known = ", ".join(BY_CLI_NAME)
        raise InputError(f"unknown event type {name!r}; use one of: {known}")
    return cls


class Ledger:
    def __init__(self, log: EventLog):
        self.log = log
        self.appender = Appender(log)

    @classmethod
    def open(cls, url: str | None = None, *, must_exist: bool = False) -> Ledger:
        """The log at ``url``; without one, the ledger service when ``LEDGER_URL``
        is set (an :class:`ledger.http_client.HttpLedger`: emit only), else
        ``LEDGER_LOG`` or the embedded default."""
        if url is None:
            from ledger.http_client import HttpLedger

            remote = HttpLedger.from_env()
            if remote is not None:
                return remote  # type: ignore[return-value]
        return cls(config.open_log(url, must_exist=must_exist))

    def emit(self, event: Event, *, expected_sequence: int | None = None) -> Accepted:
        return self.emit_many([event], expected_sequence=expected_sequence)[0]

    def emit_many(self, events: Iterable[Event], *, expected_sequence: int | None = None) -> list[Accepted]:
        """Append several events of one model atomically."""
        events = list(events)
        for event in events:
            if event.recorded_by is not None:
                # Direct log access declares its actors; recorded_by would claim an
                # authentication that did not happen here (only the service sets it).
                raise InputError(f"event {event.event_id}: recorded_by is set by the ledger service, not on direct log access")
        return self.appender.append(events, expected_sequence=expected_sequence)

    def events(self, model: str | None = None) -> Iterable[Event]:
        for record in self.log.read(model=model):
            yield codec.decode(record.data)

    def state(self, model: str) -> ModelState:
        return fold(model, self.log.read(model=model))

    def verify(self, model: str | None = None, heads: dict[str, tuple[int, str]] | None = None) -> Report:
        by_stream = getattr(self.log, "read_streams", None)
        if model is None and by_stream is not None:
            return verify(by_stream(), home=getattr(self.log, "partition_for", None), heads=heads, grouped=True)
        return verify(
            self.log.read(model=model), model=model, home=getattr(self.log, "partition_for", None), heads=heads
        )

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
