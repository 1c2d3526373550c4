"""The hash chain of one model stream, walked in log order: sequence, links,
stored hashes and the lifecycle rules, up to the first problem.

Both the write path (:mod:`ledger.append`, before building on a stream) and the
audit (:mod:`ledger.verify`, over the whole log) walk streams with this. Pure:
records come in as bytes and the decoder is passed in (:func:`ledger.codec.decode`),
so this module needs no Avro library. What each check catches is told in
:mod:`ledger.verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger import rules
from ledger.errors import DecodeError, RuleViolation
from ledger.events import GENESIS_HASH, Event
from ledger.log import StoredRecord

Decode = Callable[[bytes], Event]
"""Bytes of a record → the event; raises :class:`ledger.errors.DecodeError`."""


@dataclass(frozen=True)
class Problem:
    model: str | None
    kind: str
    """altered, missing, inserted, reordered, undecodable, rule, misplaced."""
    position: str
    sequence: int | None
    event_id: str | None
    detail: str

    def __str__(self) -> str:
        stream = self.model if self.model is not None else "(no model key)"
        where = f"{stream}#{self.sequence}" if self.sequence is not None else stream
        ident = f" (event {self.event_id})" if self.event_id else ""
        return f"{self.kind}: {where} at {self.position}{ident}: {self.detail}"


@dataclass
class StreamReport:
    model: str
    events: int = 0
    unreadable: int = 0
    """Records of this stream that decode as no event (counted apart from events)."""
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH
    problem: Problem | None = None



class StreamWalker:
    """Walks one model stream, in log order, up to its first problem."""

    def __init__(
        self,
        model: str,
        decode: Decode,
        anchor: tuple[int, str] | None = None,
        state: rules.ModelState | None = None,
    ):
        self.decode = decode
        self.report = StreamReport(model)
        self.state = state or rules.ModelState(model)
        # An export may start mid-stream: the chain then starts at the anchor (the
        # sequence and hash just before the first exported event), and the rules,
        # which need the whole history, are not replayed. A known ``state`` (the
        # append path's, folded so far) is a starting point the rules know.
        self.check_rules = state is not None or anchor is None or anchor[0] == 0
        if anchor is not None:
            self.report.head_sequence, self.report.head_hash = anchor
        elif state is not None:
            self.report.head_sequence, self.report.head_hash = state.sequence, state.last_hash
        self.previous: StoredRecord | None = None
        self.previous_id: str | None = None
        self.hashes: dict[int, str] = {}
        """sequence → hash of every event walked (to check heads recorded earlier)."""
        self.seen: dict[str, int] = {}
        """hash of every stored event so far → its sequence (spots replayed copies)."""
        self.unreadable: list[Problem] = []
        """Undecodable or misplaced records after the stream's first problem."""

    def fail(self, record: StoredRecord, kind: str, detail: str, sequence=None, event_id=None):
        self.report.problem = Problem(self.report.model, kind, str(record.position), sequence, event_id, detail)

    def walk(self, records: list[StoredRecord]) -> StreamReport:
        decoded: list = []
        failures: dict[int, str] = {}
        for index, record in enumerate(records):
            try:
                decoded.append(self.decode(record.data))
            except DecodeError as exc:
                decoded.append(None)
                failures[index] = str(exc)
        later = {}
        for index, event in enumerate(decoded):
            if event is not None:
                later.setdefault(event.sequence, index)
        for index, record in enumerate(records):
            if decoded[index] is None:
                self.report.unreadable += 1
            else:
                self.report.events += 1
            if self.report.problem is None:
                self.step(record, decoded[index], later, index)
            elif decoded[index] is None or decoded[index].model != self.report.model:
                # Past the first problem the chain tells nothing more, but every
                # record no reader can take as an event of this stream (the ones
                # projectors quarantine) is still named.
                self.unreadable.append(self._unreadable(record, decoded[index], failures.get(index)))
        return self.report

    def _unreadable(self, record: StoredRecord, event, failure: str | None) -> Problem:
        if event is None:
            return Problem(self.report.model, "undecodable", str(record.position), record.sequence, None, failure or "")
        detail = f"event of model {event.model!r} stored in stream {self.report.model!r}"
        return Problem(self.report.model, "misplaced", str(record.position), event.sequence, str(event.event_id), detail)

    def step(self, record: StoredRecord, event, later: dict[int, int], index: int) -> None:
        report = self.report
        digest = record.hash  # hashed once: the property hashes the bytes each time
        if record.recorded_hash is not None and record.recorded_hash != digest:
            self.fail(
                record,
                "altered",
                f"its bytes hash to {digest[:16]}… but {record.recorded_hash[:16]}… "
                "was stored when it was appended",
                record.sequence,
                str(event.event_id) if event is not None else None,
            )
            return
        if event is None:
            try:
                self.decode(record.data)
            except DecodeError as exc:
                self.fail(record, "undecodable", str(exc), record.sequence)
            return
        ident = str(event.event_id)
        if event.model != report.model:
            self.fail(record, "misplaced", f"event of model {event.model!r} stored in stream {report.model!r}", event.sequence, ident)
            return
        if digest in self.seen:
            self.fail(record, "inserted", f"a copy of event #{self.seen[digest]} stored again", event.sequence, ident)
            return
        expected = report.head_sequence + 1
        if event.sequence > expected:
            if later.get(expected, -1) > index:
                self.fail(
                    record,
                    "reordered",
                    f"sequence {event.sequence} is stored before sequence {expected}",
                    event.sequence,
                    ident,
                )
                return
            missing = f"#{expected}" if event.sequence == expected + 1 else f"#{expected}..#{event.sequence - 1}"
            self.fail(record, "missing", f"event(s) {missing} are missing before this one", event.sequence, ident)
            return
        if event.sequence < expected:
            self.fail(
                record,
                "inserted",
                f"a second event #{event.sequence} appears after #{report.head_sequence}",
                event.sequence,
                ident,
            )
            return
        if event.prev_hash != report.head_hash:
            if self.previous is not None:
                self.fail(
                    self.previous,
                    "altered",
                    f"its bytes hash to {report.head_hash[:16]}…, but the next event "
                    f"(#{event.sequence}) recorded {event.prev_hash[:16]}…: this event was "
                    "altered, or the next one was forged",
                    report.head_sequence,
                    self.previous_id,
                )
            elif report.head_sequence == 0:
                self.fail(record, "inserted", "the first event of a stream must link to the genesis hash", event.sequence, ident)
            else:
                self.fail(
                    record,
                    "altered",
                    f"it links to {event.prev_hash[:16]}…, not to #{report.head_sequence}'s bytes "
                    f"({report.head_hash[:16]}…)",
                    event.sequence,
                    ident,
                )
            return
        if self.check_rules:
            try:
                rules.check(self.state, event.model_copy(update={"sequence": None, "prev_hash": None}), history=True)
            except RuleViolation as exc:
                self.fail(record, "rule", f"replaying the lifecycle rules refuses it: {exc}", event.sequence, ident)
                return
            self.state = rules.apply(self.state, event, digest)
        self.seen[digest] = event.sequence
        self.hashes[event.sequence] = digest
        report.head_sequence = event.sequence
        report.head_hash = digest
        self.previous = record
        self.previous_id = ident


def walk_stream(
    model: str, records: Iterable[StoredRecord], state: rules.ModelState, decode: Decode
) -> tuple[rules.ModelState, Problem | None]:
    """Extend ``state`` with ``records`` of its stream, stopping at the first problem
    ``verify`` would name: the append path's check that it builds on the ledger's
    own history."""
    walker = StreamWalker(model, decode, state=state)
    report = walker.walk(list(records))
    return walker.state, report.problem
