"""The projection runner: reads the log from the stored positions, applies each
batch to every projection, and stores the rows *and* the positions in one database
transaction, so a crash at any point leaves either the whole batch or none of it.

Positions are kept per projection and partition (``proj_positions``); a restart —
or a second runner — reads them again inside each batch's transaction and skips
what is already applied, so nothing is applied twice and nothing is missed. Each
batch also keeps, per projection and model stream, the last event applied
(``proj_streams``), from which the chain status and replays are told.

A record that cannot be read as an event is not skipped: it becomes an
*unreadable* item, which the quarantine and the audit trail record; its position
advances with the rest of the batch.

``as_of`` cuts the log (see :mod:`projections.asof`). Views built to a cut — at an
instant or at log positions — describe one past moment: the database is marked with
its cut and refuses to be brought forward (an auditor's cut stays put); only a
rebuild replaces it.

Positions only mean something in the log they were read from, so the views record
which log they follow (:mod:`ledger.log_identity`) with the first batch, and refuse
(:class:`~ledger.errors.WrongLog`) to apply another log's records.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from contextlib import suppress
from itertools import islice
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import DropIndex

from ledger import codec, faults
from ledger.follow import LogFollower, PositionMoved, Stop, backoff
from ledger.errors import BackendError, DecodeError, InputError, LedgerError
from ledger.events import GENESIS_HASH, Event
from ledger.log import EventLog, StoredRecord
from projections import bulk, db, tables
from projections.asof import AsOf, iso, iso_ms
from projections.audit import Audit
from projections.base import Item, Projection
from projections.field import FieldPerformance
from projections.lineage import Lineage
from projections.quarantine import Quarantine
from projections.registry import Registry

if TYPE_CHECKING:
    from ledger.groups import Assignment

_log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
LOAD_BATCH_SIZE = 5000
"""Records per transaction while loading (a rebuild from scratch), unless the
caller chose a batch size."""
LOADING = "loading"
"""``proj_meta`` key present while a load is in progress or was interrupted."""
_FOLD_LOOKUPS = frozenset({"ix_lin_nodes_model", "ix_reg_deployments_env"})
"""The indexes the folds themselves read through during a load (a version's latest
lineage node, a model's open deployments)."""


def _deferred_indexes() -> list:
    """The indexes only queries need: a load drops them from the fresh tables and
    builds each once at its end, instead of inserting into it row by row."""
    return [ix for table in tables.ALL for ix in sorted(table.indexes, key=lambda i: i.name) if ix.name not in _FOLD_LOOKUPS]


def default_projections() -> list[Projection]:
    return [Registry(), Lineage(), Audit(), Quarantine(), FieldPerformance()]


@dataclass
class Batch:
    """What one committed batch applied."""

    records: int
    unreadable: int
    positions: dict[int, int]


@dataclass
class RunReport:
    records: int = 0
    """Records applied (by at least one projection)."""
    unreadable: int = 0
    batches: int = 0
    positions: dict[int, int] = field(default_factory=dict)
    """Per partition, the last offset every projection has applied."""

    def add(self, batch: Batch) -> None:
        self.records += batch.records
        self.unreadable += batch.unreadable
        self.batches += 1
        self._advance(batch.positions)

    def merge(self, report: RunReport) -> None:
        """Count another run's report in (a follower's passes)."""
        self.records += report.records
        self.unreadable += report.unreadable
        self.batches += report.batches
        self._advance(report.positions)

    def _advance(self, positions: dict[int, int]) -> None:
        for partition, offset in positions.items():
            self.positions[partition] = max(offset, self.positions.get(partition, -1))


def read_record(record: StoredRecord) -> tuple[Event | None, str | None, str | None]:
    """``(event, problem, at)``: the record's event, or why it is unreadable; and
    when the ledger recorded it (for an unreadable record, the backend's time)."""
    if not record.model:
        return None, "record has no model key", iso_ms(record.timestamp_ms)
    try:
        event = codec.decode(record.data)
    except DecodeError as exc:
        return None, str(exc), iso_ms(record.timestamp_ms)
    if event.model != record.model:
        return None, f"the record's key names model {record.model!r} but the event is for {event.model!r}", iso_ms(record.timestamp_ms)
    if event.sequence is None or event.prev_hash is None or event.recorded_at is None:
        return None, "not an accepted event: it has no sequence, prev_hash or recorded_at", iso_ms(record.timestamp_ms)
    return event, None, iso(event.recorded_at)


@dataclass(frozen=True, slots=True)
class _Read:
    record: StoredRecord
    event: Event | None
    problem: str | None
    at: str | None
    digest: str
    """The SHA-256 of the record's bytes, computed once for every projection."""
    event_id: str


def _read(record: StoredRecord) -> _Read:
    event, problem, at = read_record(record)
    return _Read(record, event, problem, at, record.hash, "" if event is None else str(event.event_id))


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _ReadAhead:
    """Reads and decodes the next batch in a thread of its own while the current one
    is applied. Python runs one thread at a time, but SQLite (the log read and the
    views' writes) and PostgreSQL work without holding it: on a machine with two
    CPUs the database's part of a batch overlaps the decoding of the next one.
    Nothing is committed here, so reading ahead changes no position."""

    def __init__(self, batches: Iterator[list]):
        self._batches = batches
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="projection-read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(("batch", batch)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the applying thread
            self._put(("error", exc))
        finally:
            self._batches.close()  # the log's reader is closed in the thread that used it

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list]:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _InLine:
    """The batches read and decoded in the applying thread, one after the other."""

    def __init__(self, batches: Iterator[list]):
        self._batches = batches

    def __iter__(self) -> Iterator[list]:
        return self._batches

    def close(self) -> None:
        self._batches.close()


class Runner:
    def __init__(
        self,
        engine: Engine,
        projections: Sequence[Projection] | None = None,
        *,
        as_of: AsOf | None = None,
        batch_size: int | None = None,
        load: bool = False,
        read_ahead: bool = True,
    ):
        """``load``: fill the views as a bulk load (for a rebuild into empty tables):
        transactions (of :data:`LOAD_BATCH_SIZE` records unless ``batch_size`` says
        otherwise) committed without waiting for the disk, made durable when the run
        ends (see :meth:`run`)."""
        self._chosen_batch_size = batch_size
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, not {batch_size}")
        self.engine = engine
        self.projections = list(projections) if projections is not None else default_projections()
        names = [p.name for p in self.projections]
        if len(set(names)) != len(names):
            raise InputError(f"projection names must be unique: {names}")
        self.as_of = as_of
        self.batch_size = batch_size
        self._created = False
        self._follower: LogFollower | None = None
        """The log being applied, once checked against the one the views follow."""
        self._committed: dict[str, dict[int, int]] | None = None
        """The positions this runner's last batch committed. While the database still
        holds exactly these at the start of a batch, nobody else wrote the views and
        what the runner and projections keep in memory (stream heads, open state) is
        still the database's; otherwise it is dropped and read again."""
        self._heads_known: dict[str, dict[str, tuple[int, str]]] = {}
        self.load = load
        self.read_ahead = read_ahead
        """Decode the next batch in a thread while one is written (:class:`_ReadAhead`)."""
        self._sync = "normal"
        self._expected: dict[int, int] | None = None
        """In a consumer group: per partition, the position the batch in hand was
        read from (see :meth:`_guard`)."""

    # --- positions -------------------------------------------------------------------

    def _stored_positions(self, conn: Connection) -> dict[str, dict[int, int]]:
        p = tables.positions.c
        found: dict[str, dict[int, int]] = {proj.name: {} for proj in self.projections}
        rows = conn.execute(select(p.projection, p.partition, p.offset).where(p.projection.in_(list(found))))
        for name, partition, offset in rows:
            found[name][partition] = offset
        return found

    def _ensure_tables(self) -> None:
        if not self._created:
            db.create(self.engine)
            self._created = True

    def positions(self) -> dict[str, dict[int, int]]:
        """Per projection, per partition, the offset of the last record applied."""
        self._ensure_tables()
        with db.errors("reading positions", self.engine), self.engine.connect() as conn:
            return self._stored_positions(conn)

    def position(self) -> dict[int, int]:
        """Per partition, the last offset every projection has applied."""
        return self._start(self.positions())

    def _start(self, stored: dict[str, dict[int, int]]) -> dict[int, int]:
        """Where to read from: the lowest position of any projection per partition;
        a partition some projection has not started is read from its beginning."""
        partitions = set().union(*(p.keys() for p in stored.values()))
        return {
            partition: min(p[partition] for p in stored.values())
            for partition in partitions
            if all(partition in p for p in stored.values())
        }

    def _guard(self, stored: dict[str, dict[int, int]], reads: Sequence[_Read]) -> None:
        """In a consumer group, inside the write transaction (which holds the
        projector's lock): refuse a batch read from a position the views no longer
        hold for its partition — another projector applied that partition since (a
        process that stalled past the group's session timeout while its partitions
        were reassigned). Nothing of the batch is written; the follower reads the
        stored positions again."""
        if self._expected is None:
            return
        at = self._start(stored)
        for partition in sorted({r.record.position.partition for r in reads}):
            if at.get(partition, -1) != self._expected.get(partition, -1):
                raise PositionMoved(
                    f"partition {partition} of the views in {db.describe(self.engine)} is at offset "
                    f"{at.get(partition, -1)}, not {self._expected.get(partition, -1)} where this batch "
                    "was read from: another projector applied it"
                )

    # --- the cut ---------------------------------------------------------------------

    def _cut_mark(self) -> str | None:
        """How the views record their cut: the instant as stored, or ``position P:O,…``."""
        if self.as_of is None:
            return None
        if self.as_of.is_time:
            return self.as_of.time
        return self.as_of.describe().removeprefix("as of ")

    def _check_cut(self, stored: dict[str, dict[int, int]]) -> None:
        with db.errors("reading the projection metadata", self.engine), self.engine.connect() as conn:
            marked = db.get_meta(conn, "as_of")
        started = any(stored.values())
        wanted = self._cut_mark()
        if marked is not None and marked != wanted:
            raise InputError(
                f"the views in {db.describe(self.engine)} were built as of {marked}; they cannot be "
                "brought forward: rebuild them (ledger project --rebuild)"
            )
        if wanted is not None and started and marked is None:
            raise InputError(
                f"the views in {db.describe(self.engine)} already hold events; build the views as of "
                "a cut into a fresh database (ledger project --rebuild --as-of …)"
            )
        if self.as_of is not None and self.as_of.positions is not None:
            for positions in stored.values():
                for partition, offset in positions.items():
                    if offset > self.as_of.positions.get(partition, -1):
                        raise InputError(
                            f"the views are already at {partition}:{offset}, past the cut "
                            f"{self.as_of.describe()}: rebuild them (ledger project --rebuild)"
                        )

    def _records(self, log: EventLog, after: dict[int, int]) -> Iterator[StoredRecord]:
        """The log after ``after``; a position cut is applied here, before decoding,
        and the read ends once every partition is past it."""
        cut = self.as_of.positions if self.as_of is not None else None
        if cut is None:
            yield from log.read(after=after)
            return
        if not cut:
            return
        partitions = set(log.partitions())
        done: set[int] = {p for p in partitions if after.get(p, -1) >= cut.get(p, -1)}
        for record in log.read(after=after):
            position = record.position
            if position.offset <= cut.get(position.partition, -1):
                yield record
            else:
                done.add(position.partition)
                if done >= partitions:
                    return

    def _inside(self, read: _Read) -> bool:
        if self.as_of is None:
            return True
        position = read.record.position
        return self.as_of.includes(position.partition, position.offset, read.at)

    # --- which log -------------------------------------------------------------------

    _REMEDY = "point --db at a fresh database for this log, or rebuild the views from it (ledger project --rebuild)"

    def _what(self) -> str:
        return f"the views in {db.describe(self.engine)}"

    def _check_log(self, log: EventLog) -> None:
        """Refuse, before anything is applied, a log other than the one the views
        follow; reads one record (once per runner and log)."""
        if self._follower is not None and self._follower.log is log:
            return
        with db.errors("reading the projection metadata", self.engine), self.engine.connect() as conn:
            recorded = db.get_meta(conn, "log")
        follower = LogFollower(log, what=self._what, remedy=self._REMEDY)
        follower.check(recorded)
        self._follower = follower

    def _record_log(self, conn: Connection) -> None:
        """Inside a write transaction: record the log the views follow, or refuse
        if another runner recorded a different one meanwhile."""
        if self._follower is None:
            return
        identity = self._follower.to_record(db.get_meta(conn, "log"))
        if identity is not None:
            db.set_meta(conn, "log", identity)

    # --- applying ----------------------------------------------------------------------

    def _heads(self, conn: Connection, projection: str, models: set[str]) -> dict[str, tuple[int, str]]:
        """The last event applied per model (kept across batches; a model this run
        has not met is read from ``proj_streams``, an absent row meaning none)."""
        known = self._heads_known.setdefault(projection, {})
        missing = sorted(m for m in models if m not in known)
        s = tables.streams.c
        for start in range(0, len(missing), 10_000):
            chunk = missing[start : start + 10_000]
            rows = conn.execute(select(s.model, s.sequence, s.hash).where(s.projection == projection, s.model.in_(chunk)))
            known.update({model: None for model in chunk})
            known.update({model: (sequence, hash_) for model, sequence, hash_ in rows})
        return {m: known[m] for m in models if known[m] is not None}

    def _forget(self) -> None:
        self._committed = None
        self._heads_known = {}
        for projection in self.projections:
            projection.forget()

    def _items(self, reads: Sequence[_Read], heads: dict[str, tuple[int, str]], changed: set[str]) -> list[Item]:
        items = []
        for read in reads:
            event = read.event
            if event is None:
                items.append(Item(read.record, None, read.problem, read.at, chain="unverifiable", digest=read.digest))
                continue
            head = heads.get(event.model)
            expected = head[1] if head else GENESIS_HASH
            stale = head is not None and event.sequence <= head[0]
            # Where the backend kept the hash of the bytes it was given, bytes that
            # no longer match it were altered in place: the link is broken too.
            intact = read.record.recorded_hash is None or read.record.recorded_hash == read.digest
            items.append(
                Item(
                    read.record,
                    event,
                    None,
                    read.at,
                    chain="ok" if event.prev_hash == expected and intact else "broken",
                    stale=stale,
                    first=head is None,
                    digest=read.digest,
                    event_id=read.event_id,
                )
            )
            if not stale:
                heads[event.model] = (event.sequence, read.digest)
                changed.add(event.model)
        return items

    def _apply(self, reads: Sequence[_Read]) -> Batch:
        try:
            return self._apply_batch(reads)
        except BaseException:
            self._forget()  # rolled back: what was folded in memory is not in the database
            raise

    def _apply_batch(self, reads: Sequence[_Read]) -> Batch:
        applied: set = set()
        unreadable: set = set()
        moved: dict[int, int] = {}
        with db.errors("applying a batch", self.engine), db.writing(self.engine, self._sync) as conn:
            self._record_log(conn)
            stored = self._stored_positions(conn)
            self._guard(stored, reads)
            if stored != self._committed:
                self._forget()
            committed = {name: dict(positions) for name, positions in stored.items()}
            # Projections at the same positions with the same heads (the rule: they
            # move together) see the very same items: built once.
            built: dict[tuple, tuple] = {}
            selected: dict[tuple, tuple] = {}
            for projection in self.projections:
                done = stored[projection.name]
                key = tuple(sorted(done.items()))
                if key not in selected:
                    # Projections at the same positions (the rule) take the same records.
                    fresh = [r for r in reads if r.record.position.offset > done.get(r.record.position.partition, -1)]
                    last: dict[int, int] = {}
                    for r in fresh:
                        position = r.record.position
                        applied.add(position)
                        if r.event is None:
                            unreadable.add(position)
                        if position.offset > last.get(position.partition, -1):
                            last[position.partition] = position.offset
                    selected[key] = (fresh, {r.event.model for r in fresh if r.event is not None}, last)
                fresh, models, last = selected[key]
                if not fresh:
                    continue
                before = self._heads(conn, projection.name, models)
                if key in built and built[key][0] == before:
                    _, heads, changed, items = built[key]
                else:
                    heads, changed = dict(before), set()
                    items = self._items(fresh, heads, changed)
                    built[key] = (before, heads, changed, items)
                projection.apply(conn, items)
                known = self._heads_known[projection.name]
                for m in changed:
                    known[m] = heads[m]
                bulk.upsert(
                    conn,
                    tables.streams,
                    [
                        {"projection": projection.name, "model": m, "sequence": heads[m][0], "hash": heads[m][1]}
                        for m in sorted(changed)
                    ],
                    keys=("projection", "model"),
                )
                bulk.upsert(
                    conn,
                    tables.positions,
                    [{"projection": projection.name, "partition": p, "offset": o} for p, o in sorted(last.items())],
                    keys=("projection", "partition"),
                )
                for partition, offset in last.items():
                    moved[partition] = max(offset, moved.get(partition, -1))
                    committed[projection.name][partition] = max(offset, committed[projection.name].get(partition, -1))
            faults.reached("project-before-commit")  # tests only: applied, not committed
        self._committed = committed
        return Batch(len(applied), len(unreadable), moved)

    def run(
        self,
        log: EventLog,
        *,
        on_batch: Callable[[Batch], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunReport:
        """Catch up with the log (up to its end when the call starts) and return."""
        stored = self.positions()
        self._check_cut(stored)
        self._check_log(log)
        if self.as_of is not None:
            # Marked before anything is applied, so views of a cut are always marked
            # as such — even a cut before the first event, which holds no row.
            with db.errors("marking the views' cut", self.engine), db.writing(self.engine) as conn:
                self._record_log(conn)
                db.set_meta(conn, "as_of", self._cut_mark())
        report = RunReport()
        loading = self._begin_load()
        size = LOAD_BATCH_SIZE if loading and self._chosen_batch_size is None else self.batch_size
        def batches() -> Iterator[list[_Read]]:
            for chunk in _chunks(self._records(log, self._start(stored)), size):
                yield [r for r in map(_read, chunk) if self._inside(r)]

        ahead = _ReadAhead(batches()) if self.read_ahead else _InLine(batches())
        try:
            for reads in ahead:
                if reads:
                    batch = self._apply(reads)
                    if batch.records:
                        report.add(batch)
                        if on_batch is not None:
                            on_batch(batch)
                if should_stop is not None and should_stop():
                    break
        except BaseException:
            ahead.close()
            if loading:
                with suppress(LedgerError):
                    self._end_load()
            raise
        ahead.close()
        if loading:
            self._end_load()
        return report

    # --- loading -------------------------------------------------------------------
    # A load commits without waiting for the disk. A killed process loses nothing
    # (SQLite and PostgreSQL both keep every commit across a process crash), but on
    # SQLite an OS crash or power cut can leave the file damaged. So the load is
    # marked first, durably; the next run that finds the mark (the load was cut
    # short) has SQLite check the file: sound, it resumes from the stored
    # positions as after any crash; damaged, it refuses with one line saying to
    # rebuild. A finished (or cleanly stopped) load syncs everything, then clears
    # the mark, durably.

    def _begin_load(self) -> bool:
        with db.errors("reading the projection metadata", self.engine), self.engine.connect() as conn:
            interrupted = db.get_meta(conn, LOADING) is not None
        if interrupted:
            damage = db.damage(self.engine)
            if damage is not None:
                raise BackendError(
                    f"{self._what()} were being rebuilt when the process stopped, and the database is "
                    f"damaged ({damage}): build the views again into a new database file "
                    "(ledger --db sqlite:///NEW.db project --rebuild)"
                )
        if not (self.load or interrupted):
            return False
        if not interrupted:
            with db.errors("marking a load", self.engine), db.writing(self.engine, "durable") as conn:
                db.set_meta(conn, LOADING, "1")
                if self.load:  # tables just created: nothing to lose but insert time
                    for index in _deferred_indexes():
                        conn.execute(DropIndex(index, if_exists=True))
        self._sync = "load"
        return True

    def _end_load(self) -> None:
        with db.errors("indexing the loaded views", self.engine), db.writing(self.engine, "load") as conn:
            for index in _deferred_indexes():
                index.create(conn, checkfirst=True)
        self._sync = "normal"
        db.settle(self.engine)
        with db.errors("ending a load", self.engine), db.writing(self.engine, "durable") as conn:
            db.set_meta(conn, LOADING, None)
        self.load = False

    def follow(
        self,
        log: EventLog,
        *,
        poll_interval: float = 1.0,
        on_batch: Callable[[Batch], None] | None = None,
        on_error: Callable[[LedgerError, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        group: Assignment | None = None,
    ) -> RunReport:
        """Catch up, then keep applying new records until ``should_stop`` says so.

        An unreachable log or database does not end the loop: ``on_error`` is told,
        and the runner tries again later (backing off up to a minute), resuming
        from the stored positions as after any restart.

        With ``group`` (a member's share of a Kafka consumer group,
        :func:`ledger.groups.sharing`), only the partitions assigned to this
        process are read and applied; see :meth:`_follow_group`."""
        if self.as_of is not None:
            raise InputError("a projection cut as of a time or position cannot follow the log")
        stop = Stop(should_stop=should_stop or (lambda: False))
        if group is not None:
            return self._follow_group(log, group, stop, poll_interval, on_batch, on_error)
        follower = LogFollower(log, what=self._what, remedy=self._REMEDY)
        total = RunReport()
        ends: dict[int, int] | None = None
        failures = 0
        while not stop():
            try:
                # Reading the log's end is cheap; reading the log (a new consumer on
                # Kafka) is not: skip the read while the end has not moved.
                now = follower.ends()
                idle = now is not None and now == ends
                report = RunReport() if idle else self.run(log, on_batch=on_batch, should_stop=stop)
                ends, failures = now, 0
            except BackendError as exc:
                failures += 1
                delay = backoff(failures, poll_interval)
                if on_error is not None:
                    on_error(exc, delay)
                stop.wait(delay)
                continue
            total.merge(report)
            if report.records == 0:
                stop.wait(poll_interval)
        return total

    def _follow_group(
        self,
        log: EventLog,
        group: Assignment,
        stop: Stop,
        poll_interval: float,
        on_batch: Callable[[Batch], None] | None,
        on_error: Callable[[LedgerError, float], None] | None,
    ) -> RunReport:
        """Follow the partitions ``group`` assigns to this process.

        Each pass reads the stored positions of the owned partitions again (so a
        partition just assigned starts where its previous owner's last commit left
        it), and writes each batch under :meth:`Assignment.applying
        <ledger.groups.Assignment.applying>`: a revocation waits for the batch's
        transaction, and a batch read under an assignment that has changed since is
        dropped. A process that stalled past the session timeout has its late
        batch refused by the database (:meth:`_guard`)."""
        total = RunReport()
        follower = LogFollower(log, what=self._what, remedy=self._REMEDY)
        seen: tuple | None = None
        ready = False
        failures = 0
        while not stop():
            generation, owned = group.current()
            if not owned:
                group.changed.clear()
                if group.current()[1]:
                    continue
                group.changed.wait(poll_interval)
                continue
            try:
                if not ready:
                    self._ensure_tables()
                    self._check_log(log)
                    if self._begin_load():  # an interrupted rebuild: checked, then followed as usual
                        self._end_load()
                    ready = True
                ends = follower.ends()
                now = (generation, None if ends is None else {p: ends.get(p) for p in sorted(owned)})
                if now == seen and ends is not None:
                    stop.wait(poll_interval)
                    continue
                report, complete = self._catch_up_owned(log, group, generation, owned, stop, on_batch)
                seen = now if complete else None
                failures = 0
            except PositionMoved as exc:
                _log.info("batch refused: %s; reading the stored positions again", exc)
                self._forget()
                seen = None
                continue
            except BackendError as exc:
                failures += 1
                delay = backoff(failures, poll_interval)
                if on_error is not None:
                    on_error(exc, delay)
                seen = None
                stop.wait(delay)
                continue
            total.merge(report)
        return total

    def _catch_up_owned(
        self,
        log: EventLog,
        group: Assignment,
        generation: int,
        owned: frozenset[int],
        stop: Stop,
        on_batch: Callable[[Batch], None] | None,
    ) -> tuple[RunReport, bool]:
        """The owned partitions from their stored positions to the log's end at the
        start of the call; ``complete`` is False when the assignment changed on the
        way (the rest was left unread)."""
        report = RunReport()
        start = {p: o for p, o in self._start(self.positions()).items() if p in owned}
        expected = dict(start)
        records = log.read(after=start, partitions=sorted(owned))
        try:
            for chunk in _chunks(records, self.batch_size):
                reads = [_read(record) for record in chunk]
                with group.applying(generation) as mine:
                    if not mine:
                        return report, False
                    batch = self._apply_read_from(reads, expected)
                if batch.records:
                    report.add(batch)
                    if on_batch is not None:
                        on_batch(batch)
                if stop():
                    return report, False
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()
        return report, True

    def apply_from(self, log: EventLog, records: Sequence[StoredRecord], read_from: dict[int, int]) -> Batch:
        """Apply ``records`` of ``log``, read after the positions ``read_from``, in one
        transaction — or refuse them all (:class:`~ledger.follow.PositionMoved`)
        when the views' position of one of their partitions is no longer
        ``read_from``'s: another process applied it since. ``read_from`` then moves
        past the records. What a member of a consumer group applies with."""
        self._ensure_tables()
        self._check_log(log)
        return self._apply_read_from([_read(record) for record in records], read_from)

    def _apply_read_from(self, reads: Sequence[_Read], read_from: dict[int, int]) -> Batch:
        self._expected = read_from
        try:
            batch = self._apply(reads)
        finally:
            self._expected = None
        for r in reads:
            position = r.record.position
            read_from[position.partition] = max(position.offset, read_from.get(position.partition, -1))
        return batch


def project(
    log: EventLog,
    engine: Engine,
    *,
    rebuild: bool = False,
    as_of: AsOf | None = None,
    batch_size: int | None = None,
    on_batch: Callable[[Batch], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    read_ahead: bool = True,
) -> RunReport:
    """Bring the views in ``engine`` up to date with ``log`` (from scratch with
    ``rebuild``; a cut always rebuilds, since it describes the views at one moment)."""
    if rebuild or as_of is not None:
        db.drop(engine)
    fresh = rebuild or as_of is not None
    runner = Runner(engine, as_of=as_of, batch_size=batch_size, load=fresh, read_ahead=read_ahead)
    return runner.run(log, on_batch=on_batch, should_stop=should_stop)


def build(
    log: EventLog,
    db_url: str | None = None,
    *,
    as_of: AsOf | None = None,
    batch_size: int | None = None,
) -> Engine:
    """Fold ``log`` (cut at ``as_of``) into fresh views and return the engine to
    query them with :mod:`projections.queries`. Without ``db_url`` the views live in
    a private in-memory SQLite database — the way to answer an as-of question
    independently of any projection database."""
    engine = db.open_db(db_url or "sqlite://")
    project(log, engine, rebuild=True, as_of=as_of, batch_size=batch_size)
    return engine
