"""Independent verification of the raw log: hash chains, sequences, schemas, rules.

It re-reads every record from the log itself (no projection database), decodes
each with the writer schema its fingerprint names, and walks every model stream:

* the envelope's ``sequence`` must be the previous one plus one — a gap names the
  missing events, a repeat or step back an inserted or reordered one;
* ``prev_hash`` must be the SHA-256 of the previous record's exact bytes — a
  mismatch names the previous event as altered (or this one as inserted);
* the hash the backend stored beside the bytes, where it keeps one, must match the
  bytes (this is what catches an altered *last* event, which has no successor);
* replaying the lifecycle rules must accept every event.

The first problem of each stream is reported; later ones in that stream follow
from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from ledger import codec, rules
from ledger.errors import DecodeError, RuleViolation
from ledger.events import GENESIS_HASH
from ledger.log import StoredRecord


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


@dataclass
class Report:
    streams: dict[str, StreamReport] = field(default_factory=dict)
    unreadable: list[Problem] = field(default_factory=list)
    """Records that belong to no readable stream (undecodable, no key)."""

    @property
    def problems(self) -> list[Problem]:
        found = [s.problem for s in self.streams.values() if s.problem]
        return found + self.unreadable

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams.values())

    @property
    def unreadable_records(self) -> int:
        keyless = sum(1 for p in self.unreadable if p.model is None)
        return keyless + sum(s.unreadable for s in self.streams.values())

    def summary(self, where: str = "") -> str:
        unreadable = self.unreadable_records
        extra = f", {unreadable} unreadable record(s)" if unreadable else ""
        status = "intact" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{len(self.streams)} stream(s), {self.events} event(s){extra}{where}: {status}"

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "streams": len(self.streams),
            "events": self.events,
            "unreadable_records": self.unreadable_records,
            "heads": {
                m: {"sequence": s.head_sequence, "hash": s.head_hash} for m, s in sorted(self.streams.items())
            },
            "problems": [asdict(p) for p in self.problems],
        }


class _Walker:
    """Walks one model stream, in log order, up to its first problem."""

    def __init__(
        self, model: str, anchor: tuple[int, str] | None = None, state: rules.ModelState | None = None
    ):
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
                decoded.append(codec.decode(record.data))
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
        if record.recorded_hash is not None and record.recorded_hash != record.hash:
            self.fail(
                record,
                "altered",
                f"its bytes hash to {record.hash[:16]}… but {record.recorded_hash[:16]}… "
                "was stored when it was appended",
                record.sequence,
                str(event.event_id) if event is not None else None,
            )
            return
        if event is None:
            try:
                codec.decode(record.data)
            except DecodeError as exc:
                self.fail(record, "undecodable", str(exc), record.sequence)
            return
        ident = str(event.event_id)
        if event.model != report.model:
            self.fail(record, "misplaced", f"event of model {event.model!r} stored in stream {report.model!r}", event.sequence, ident)
            return
        if record.hash in self.seen:
            self.fail(record, "inserted", f"a copy of event #{self.seen[record.hash]} stored again", event.sequence, ident)
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
            self.state = rules.apply(self.state, event, record.hash)
        self.seen[record.hash] = event.sequence
        self.hashes[event.sequence] = record.hash
        report.head_sequence = event.sequence
        report.head_hash = record.hash
        self.previous = record
        self.previous_id = ident


def walk_stream(model: str, records: Iterable[StoredRecord], state: rules.ModelState) -> tuple[rules.ModelState, Problem | None]:
    """Extend ``state`` with ``records`` of its stream, stopping at the first problem
    ``verify`` would name: the append path's check that it builds on the ledger's
    own history."""
    walker = _Walker(model, state=state)
    report = walker.walk(list(records))
    return walker.state, report.problem


def verify(
    records: Iterable[StoredRecord],
    model: str | None = None,
    anchors: dict[str, tuple[int, str]] | None = None,
    home: Callable[[str], int] | None = None,
    heads: dict[str, tuple[int, str]] | None = None,
) -> Report:
    """Group ``records`` (in log order) by stream and report the first problem of each.

    ``anchors`` gives, per model, the ``(sequence, hash)`` the first record links to
    when the records start mid-stream (an export with --since). ``home`` gives the
    partition a model's stream lives in (Kafka): a record keyed by the model in
    another partition was produced there by hand and is no part of the stream.
    ``heads`` gives, per model, a ``(sequence, hash)`` recorded earlier (an evidence
    file's chain heads, a published ``verify --json``): the stream must still hold
    that very event — which is what catches events deleted from a stream's end."""
    report = Report()
    streams: dict[str, list[StoredRecord]] = {}
    for record in records:
        if model is not None and record.model != model:
            continue
        if not record.model:
            report.unreadable.append(
                Problem(None, "undecodable", str(record.position), None, None, "record has no model key")
            )
            continue
        if home is not None and record.position.partition != home(record.model):
            report.unreadable.append(
                Problem(
                    record.model,
                    "misplaced",
                    str(record.position),
                    record.sequence,
                    None,
                    f"keyed by {record.model!r}, whose stream lives in partition {home(record.model)}",
                )
            )
            continue
        streams.setdefault(record.model, []).append(record)
    walkers = {}
    for name, stream in streams.items():
        walker = walkers[name] = _Walker(name, (anchors or {}).get(name))
        report.streams[name] = walker.walk(stream)
        report.unreadable.extend(walker.unreadable)
    for name, (sequence, expected) in sorted((heads or {}).items()):
        if model is not None and name != model:
            continue
        walker = walkers.get(name)
        found = walker.hashes.get(sequence) if walker else None
        if walker is not None and walker.report.problem is not None and found is None:
            continue  # the stream's first problem already explains it
        if found is None:
            have = walker.report.head_sequence if walker else 0
            report.unreadable.append(
                Problem(
                    name,
                    "missing",
                    "-",
                    sequence,
                    None,
                    f"a head #{sequence} was recorded earlier, but the stream now ends at #{have}: "
                    "events were removed from its end",
                )
            )
        elif found != expected:
            report.unreadable.append(
                Problem(
                    name,
                    "altered",
                    "-",
                    sequence,
                    None,
                    f"event #{sequence} now hashes to {found[:16]}…, the head recorded earlier was {expected[:16]}…",
                )
            )
    return report
