"""The append path, shared by every backend.

For each model stream: fold its current state, check each draft against the
lifecycle rules, assign the next sequence, link ``prev_hash`` to the SHA-256 of
the previous event's stored bytes, encode, and hand the records to the backend,
which appends them atomically or calls the plan again if another writer won.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from ledger import codec, rule_snapshots, rules
from ledger.errors import ConflictError, DecodeError, InputError, RuleViolation
from ledger.events import Event, utcnow
from ledger.log import EventLog, NewRecord, Position, StoredRecord, StreamView
from ledger.chain import walk_stream


MAX_EVENT_BYTES = 1_000_000
"""Largest encoded event either backend accepts: Kafka's default limit for one
message (1 MiB, key and headers included) with room to spare, so an event the
embedded log accepts could also go to Kafka."""


@dataclass(frozen=True)
class Accepted:
    """The synchronous answer to an accepted event."""

    event: Event
    position: Position
    hash: str
    duplicate: bool = False
    """True when the event id was already in the log (an idempotent retry)."""

    def as_dict(self) -> dict:
        return {
            "accepted": True,
            "event_id": str(self.event.event_id),
            "event_type": self.event.event_type,
            "model": self.event.model,
            "version": self.event.version,
            "sequence": self.event.sequence,
            "hash": self.hash,
            "prev_hash": self.event.prev_hash,
            "position": str(self.position),
            "recorded_at": self.event.recorded_at.isoformat() if self.event.recorded_at else None,
            "duplicate": self.duplicate,
            "event": self.event.model_dump(mode="json"),
        }


def fold(model: str, records: Iterable[StoredRecord], state: rules.ModelState | None = None) -> rules.ModelState:
    """Replay records of one stream into its rule state, refusing a stream whose
    chain is broken (undecodable, altered, missing, inserted, reordered or
    misplaced records, or a history the rules refuse).

    A log can hold records no ledger writer appended (a replayed copy produced to
    the topic, a hand-edited file): building on them would accept events against a
    history that is not the ledger's, e.g. a second #3 or an approval of a forged
    evaluation. The checks are ``ledger verify``'s own."""
    state, problem = walk_stream(model, records, state or rules.ModelState(model), codec.decode)
    if problem is not None:
        raise DecodeError(
            f"stream {model!r} is damaged at {problem.position} ({problem.kind}: {problem.detail}); "
            "run `ledger verify` — no new event is accepted on a damaged stream"
        )
    return state


def _nul_field(value, path: str = "") -> str | None:
    """Dotted path of the first string holding a NUL character, if any."""
    if not path and "\\u0000" not in json.dumps(value):
        return None  # the common case, checked in C: no NUL anywhere
    if isinstance(value, str):
        return path or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_field(str(key), f"{path}.{key}".lstrip(".")) or _nul_field(item, f"{path}.{key}".lstrip("."))
            if found:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_field(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _nul_in(draft: Event) -> str | None:
    """Where ``draft`` holds a NUL character, if anywhere. One pass of pydantic's
    own serializer finds whether it does (JSON writes a NUL, in a value or a key, as
    ``\\u0000``); only then is the event walked to name the field — the walk over
    every field of every event was most of a batched append's time."""
    if "\\u0000" not in draft.model_dump_json():
        return None
    return _nul_field(draft.model_dump(mode="json"))


def _plain(values: dict | list | tuple) -> bool:
    """Whether no string in ``values`` (a ``model_dump()``), key or value, holds a
    NUL character and every float is finite: the common case, one loop per
    container over the dump the append path encodes from anyway. Only when it
    says no are the precise checks (which name the field) run."""
    if type(values) is dict:
        for key in values:
            if type(key) is str and "\x00" in key:
                return False
        values = values.values()
    for item in values:
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return False
        elif kind is float:
            if item - item != 0.0:  # inf - inf and NaN - NaN are NaN
                return False
        elif (kind is dict or kind is list or kind is tuple) and not _plain(item):
            return False
    return True


def _same_action(stored: Event, draft: Event) -> bool:
    ignore = {"sequence", "prev_hash", "recorded_at", "replaced_version"}
    if "occurred_at" not in draft.model_fields_set:
        # Defaulted to "now" when the draft was made: a retry from a file (`ledger
        # emit` again after a timeout) is made later but is the same action.
        ignore.add("occurred_at")
    return type(stored) is type(draft) and stored.model_dump(exclude=ignore) == draft.model_dump(exclude=ignore)


class Appender:
    """Validates, sequences, chains and appends events to a log."""

    def __init__(self, log: EventLog, clock: Callable[[], datetime] = utcnow):
        self.log = log
        self.clock = clock
        self._states: dict[str, rules.ModelState] = {}
        self._snapshot_at: dict[str, int] = {}
        """Per model, the sequence of the last rule-state snapshot seen or written."""
        self._lock = threading.Lock()

    def state(self, view: StreamView, model: str) -> rules.ModelState:
        head = view.head()
        cached = self._states.get(model)
        if head is None:
            return rules.ModelState(model)
        if cached is not None and cached.sequence == head.sequence and cached.last_hash == head.hash:
            return cached
        if cached is not None and cached.sequence < head.sequence:
            return fold(model, view.records_after(cached.sequence), cached)
        start = self._from_snapshot(view, model, head)
        if start is not None:
            return fold(model, view.records_after(start.sequence), start)
        return fold(model, view.records_after(0))

    def _from_snapshot(self, view: StreamView, model: str, head) -> rules.ModelState | None:
        """The stream's snapshot state, if the log still holds, at its sequence, an
        event whose stored bytes hash to the hash it was computed at."""
        snapshot = view.snapshot()
        if snapshot is None or snapshot.sequence > head.sequence:
            return None
        self._snapshot_at[model] = snapshot.sequence
        state = rule_snapshots.loads(snapshot.state)
        if state is None or (state.model, state.sequence, state.last_hash) != (model, snapshot.sequence, snapshot.hash):
            return None
        at = next(iter(view.records_after(snapshot.sequence - 1)), None)
        if at is None or at.sequence != snapshot.sequence or at.hash != snapshot.hash:
            return None
        if at.recorded_hash is not None and at.recorded_hash != snapshot.hash:
            return None
        return state

    def keep_snapshot(self, view: StreamView, state: rules.ModelState) -> int | None:
        """Store a snapshot with this append (``state`` is the stream's state after
        it) once the stream grew by :data:`rule_snapshots.EVERY` events since the
        last one; returns its sequence, for :meth:`remember` once committed."""
        last = self._snapshot_at.get(state.model)
        if last is None:
            found = view.snapshot()
            last = found.sequence if found is not None else 0
            self._snapshot_at[state.model] = last
        if state.sequence - last < rule_snapshots.EVERY:
            return None
        view.keep(rule_snapshots.Snapshot(state.sequence, state.last_hash, rule_snapshots.dumps(state)))
        return state.sequence

    def append(self, events: Iterable[Event], *, expected_sequence: int | None = None) -> list[Accepted]:
        """Append drafts of one model atomically: all are accepted or none.

        ``expected_sequence`` makes the append conditional: it fails with
        :class:`ConflictError` unless the stream's last sequence is exactly that
        (0 for an empty stream) — optimistic concurrency for read-decide-write."""
        drafts = list(events)
        dumps: list[dict] = []
        model = check_drafts(drafts, dumps=dumps)
        ids = [str(d.event_id) for d in drafts]
        outcome: dict = {}

        def plan(view: StreamView) -> list[NewRecord]:
            # A backend calls plan again after losing a race: only the last run counts.
            outcome.clear()
            known = view.find_all(ids)
            decision = decide(
                self.state(view, model), known.get, drafts,
                expected_sequence=expected_sequence, clock=self.clock, dumps=dumps, ids=ids,
            )
            outcome["decision"] = decision
            outcome["snapshot"] = self.keep_snapshot(view, decision.state) if decision.records else None
            return decision.records

        stored = self.log.append(model, plan)
        decision = outcome["decision"]
        self.remember(model, decision.state, outcome["snapshot"])
        return decision.answers(stored)

    def remember(self, model: str, state: rules.ModelState, snapshot: int | None = None) -> None:
        """Keep ``state`` as the model's state after a committed append, and the
        sequence of the snapshot it wrote, if it wrote one."""
        with self._lock:
            self._states[model] = state
            if snapshot is not None:
                self._snapshot_at[model] = snapshot


def check_drafts(drafts: list[Event], *, dumps: list[dict] | None = None) -> str:
    """Refuse a malformed append (empty, several models, sequenced events, NUL
    characters, an event id given twice); returns the model.

    ``dumps``, when given, receives each draft's ``model_dump()`` (the NUL check
    reads it, and sees that its numbers are finite): handed to :func:`decide`, it
    spares a second serialisation and walk of every event, a good part of a
    batched append's time."""
    if not drafts:
        raise InputError("nothing to append")
    model = drafts[0].model
    if any(d.model != model for d in drafts):
        raise InputError("one append takes events of a single model")
    for draft in drafts:
        if not draft.is_draft:
            raise InputError(f"event {draft.event_id} already has a sequence; send drafts")
        values = draft.model_dump()
        plain = _plain(values)
        if dumps is not None:
            # A draft with a non-finite number gets no dump: decide() dumps it
            # again and the rules name the number.
            dumps.append(values if plain else None)
        where = None if plain else _nul_in(draft)
        if where:
            # A NUL can be encoded but not stored by every database a view or an
            # auditor uses (PostgreSQL text refuses it): refuse it at the door.
            raise InputError(f"field {where} holds a NUL character")
    ids = [d.event_id for d in drafts]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"event id {twice} is given to more than one event of this append")
    return model


@dataclass
class Decision:
    """What one append of drafts decided against a stream state: the records to
    write, the state after them, and per draft either the stored duplicate or
    the sequenced event."""

    records: list[NewRecord]
    state: rules.ModelState
    slots: list[Accepted | Event]

    def answers(self, stored: list[StoredRecord]) -> list[Accepted]:
        """The answers once ``stored`` (holding at least this decision's records)
        is committed."""
        by_sequence = {(r.model, r.sequence): r for r in stored}
        answers = []
        for slot in self.slots:
            if isinstance(slot, Accepted):
                answers.append(slot)
            else:
                record = by_sequence[(slot.model, slot.sequence)]
                answers.append(Accepted(slot, record.position, record.recorded_hash or record.hash))
        return answers


def decide(
    state: rules.ModelState,
    find: Callable[[str], StoredRecord | None],
    drafts: list[Event],
    *,
    expected_sequence: int | None = None,
    clock: Callable[[], datetime] = utcnow,
    dumps: list[dict] | None = None,
    ids: list[str] | None = None,
) -> Decision:
    """Decide drafts of one model (checked by :func:`check_drafts`) against
    ``state``: pure but for ``clock``. ``find`` looks an event id up in the stream,
    so a retry is answered as a duplicate. Raises what the rules raise.
    ``dumps`` are the drafts' ``model_dump()`` as :func:`check_drafts` made them,
    their numbers checked finite (not changed here, so a plan run again can use
    them again); ``ids`` the drafts' event ids as text, when the caller has them."""
    model = state.model
    if expected_sequence is not None and state.sequence != expected_sequence:
        raise ConflictError(
            f"stream {model!r} is at sequence {state.sequence}, "
            f"the writer expected {expected_sequence}"
        )
    # recorded_at never steps back inside a stream, so "as of T" is always a
    # prefix of each stream even if the host clock is adjusted.
    recorded_at = clock()
    if state.last_recorded_at is not None and recorded_at < state.last_recorded_at:
        recorded_at = state.last_recorded_at
    records: list[NewRecord] = []
    slots: list[Accepted | Event] = []
    for index, draft in enumerate(drafts):
        event_id = ids[index] if ids is not None else str(draft.event_id)
        existing = find(event_id)
        if existing is not None:
            stored = codec.decode(existing.data)
            if not _same_action(stored, draft):
                raise RuleViolation(
                    "event-id-unique",
                    f"event id {draft.event_id} is already used by another event",
                )
            slots.append(Accepted(stored, existing.position, existing.hash, True))
            continue
        # One dump of the draft serves the admission checks and the encoding: the
        # event differs from the draft only by the fields set here (and, when the
        # rules derive one, such as a deployment's replaced version, it is dumped anew).
        known = dumps[index] if dumps is not None else None
        values = dict(known) if known is not None else draft.model_dump()
        rules.admit(draft, recorded_at, values=values, numbers_checked=known is not None)
        checked = rules.check(state, draft)
        sequenced = {"sequence": state.sequence + 1, "prev_hash": state.last_hash, "recorded_at": recorded_at}
        event = checked.model_copy(update=sequenced)
        if checked is draft:
            values.update(sequenced)
        else:
            values = event.model_dump()
        values["event_id"] = event_id
        encoded = codec.encode(event, values=values)
        if len(encoded.data) > MAX_EVENT_BYTES:
            raise InputError(
                f"{event.event_type} of {model!r} is too large: {len(encoded.data):,} bytes encoded, "
                f"at most {MAX_EVENT_BYTES:,} (Kafka's message limit); keep bulky data behind a URI"
            )
        record = NewRecord(
            model=model,
            sequence=event.sequence,
            event_id=event_id,
            event_type=event.event_type,
            fingerprint=encoded.fingerprint,
            data=encoded.data,
        )
        state = rules.apply(state, event, record.hash)
        records.append(record)
        slots.append(event)
    return Decision(records, state, slots)
