"""How many events per second the append path accepts, per backend.

    python bench/append.py [--events 500] [--batches 20] [--batch-size 100] [--rounds 3] [--history 0]
                           [--switches 20] [--kafka HOST:PORT | --no-kafka]

Prints accepted events/s for
* single synchronous appends (``emit``; each waits until the event is durable),
* batched appends (``emit_many`` of ``--batch-size`` events, atomic),
* on Kafka also two writers alternating on one partition: every switch makes the
  new writer fence the other (``init_transactions``), the cost of the embedded
  single-writer protocol when processes interleave.

Beside the embedded figures it prints SQLite's own rate (one row per transaction,
synchronous=FULL) and, when ``eventsourcing`` is installed, the peer Python event
store's rates on SQLite, measured in the same run: once with its own small events
(one string attribute, the issue's reference) and once with events carrying the
same fields as ours. Every line gives the CPU time of this process per event
(``time.process_time``) beside the wall rate, and the ratios against the
references are printed at the end: on a shared machine only same-run ratios mean
anything. The embedded measurements run ``--rounds`` times, ours and the
references one after the other in each round; each line is the median round's, each
ratio the median of the rounds' ratios (with their spread), so one burst of another
process's disk or CPU use moves a figure less.

Each run uses a fresh SQLite file and a fresh Kafka topic (deleted afterwards).
The broker defaults to ``LEDGER_TEST_KAFKA``, else ``scripts/kafka.sh bootstrap``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ledger import samples
from ledger.client import Ledger

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("churn", "fraud", "pricing", "demand")


def _default_kafka() -> str | None:
    if os.environ.get("LEDGER_TEST_KAFKA"):
        return os.environ["LEDGER_TEST_KAFKA"]
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / "kafka.sh"), "bootstrap"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class Timed:
    """Wall and CPU time of one measured loop."""

    def __init__(self, count: int):
        self.count = count

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    @property
    def rate(self) -> float:
        return self.count / self.wall

    def __str__(self) -> str:
        return (
            f"{self.rate:9.1f} events/s  ({self.count} events in {self.wall:.2f} s, "
            f"{1000 * self.wall / self.count:.3f} ms/event wall, {1000 * self.cpu / self.count:.3f} ms/event CPU)"
        )


def _history(ledger: Ledger, events: int) -> None:
    """``events`` earlier events on each model, appended before the measurement:
    what an append costs on a stream with a past, not only on a new one."""
    for model in MODELS:
        for start in range(0, events, 500):
            ledger.emit_many([samples.snapshot(model, f"past-{i}") for i in range(start, min(start + 500, events))])


def single(url: str, events: int, history: int = 0) -> Timed:
    with Ledger.open(url) as ledger:
        _history(ledger, history)
        ledger.emit(samples.snapshot("warm-up"))  # connections and writer role, not measured
        drafts = [samples.snapshot(MODELS[i % len(MODELS)], f"single-{i}") for i in range(events)]
        with Timed(events) as timed:
            for draft in drafts:
                ledger.emit(draft)
        return timed


def batched(url: str, batches: int, size: int, history: int = 0) -> Timed:
    with Ledger.open(url) as ledger:
        _history(ledger, history)
        ledger.emit(samples.snapshot("warm-up", "batched"))
        groups = [
            [samples.snapshot(MODELS[b % len(MODELS)], f"batch-{b}-{i}") for i in range(size)] for b in range(batches)
        ]
        with Timed(batches * size) as timed:
            for group in groups:
                ledger.emit_many(group)
        return timed


def sqlite_rows(path: Path, rows: int, size: int) -> Timed:
    """SQLite's own rate: one INSERT per transaction, WAL, synchronous=FULL — the
    floor under any embedded append that is durable when it answers."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE rows (position INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, data BLOB)")
    payload = os.urandom(size)
    with Timed(rows) as timed:
        for i in range(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO rows (key, data) VALUES (?, ?)", (f"row-{i}", payload))
            conn.execute("COMMIT")
    conn.close()
    return timed


@functools.cache
def _peer_classes():
    """The peer's application class and our aggregate, defined once: the peer
    registers each aggregate class under its name and refuses a second one."""
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate, event
    except ImportError:
        return None

    class Stream(Aggregate):
        @event("Started")
        def __init__(self, name: str):
            self.name = name

        @event("Noted")
        def note(self, text: str, data: dict | None = None) -> None:
            pass

    return Application, Stream


def peer(path: Path, events: int, batches: int, size: int, fields: bool = False) -> tuple[Timed, Timed] | None:
    """pyeventsourcing's SQLite recorder, when installed (``pip install
    eventsourcing``): an aggregate's events saved one per transaction, then
    ``size`` per transaction. Its own events are small (one string attribute);
    ours carry a data contract and statistics. With ``fields`` each of its events
    carries the same fields as ours (a dict of the snapshot's JSON values, stored
    by its JSON transcoder), which is the like-for-like comparison."""
    classes = _peer_classes()
    if classes is None:
        return None
    Application, Stream = classes

    def app(name: str) -> Application:
        return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path / name)})

    def data(text: str) -> dict | None:
        return samples.snapshot("churn", text).model_dump(mode="json") if fields else None

    suffix = "-fields" if fields else ""
    one = app(f"peer-single{suffix}.db")
    stream = Stream("single")
    one.save(stream)
    notes = [(f"single-{i}", data(f"single-{i}")) for i in range(events)]
    with Timed(events) as single_timed:
        for text, values in notes:
            stream.note(text, values)
            one.save(stream)

    many = app(f"peer-batched{suffix}.db")
    streams = [Stream(model) for model in MODELS]
    many.save(*streams)
    notes = [[(f"batch-{b}-{i}", data(f"batch-{b}-{i}")) for i in range(size)] for b in range(batches)]
    with Timed(batches * size) as batched_timed:
        for b in range(batches):
            stream = streams[b % len(streams)]
            for text, values in notes[b]:
                stream.note(text, values)
            many.save(stream)
    return single_timed, batched_timed


def alternating(url: str, switches: int) -> Timed:
    with Ledger.open(url) as first, Ledger.open(url) as second:
        first.emit(samples.snapshot("ping-pong", "warm-up"))
        drafts = [samples.snapshot("ping-pong", f"switch-{i}") for i in range(switches)]
        with Timed(switches) as timed:
            for i, draft in enumerate(drafts):
                (second if i % 2 == 0 else first).emit(draft)
        return timed


def _drop_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()


def _embedded_round(tmp: Path, args) -> dict[str, Timed]:
    """One round of every embedded measurement, ours and the references, in turn."""
    figures = {
        "ours single": single(f"sqlite:///{tmp / 'single.db'}", args.events, args.history),
        "ours batched": batched(f"sqlite:///{tmp / 'batched.db'}", args.batches, args.batch_size, args.history),
    }
    size = len(samples.snapshot("churn", "size").model_dump_json())
    figures["sqlite single"] = sqlite_rows(tmp / "raw.db", args.events, size)
    rates = peer(tmp, args.events, args.batches, args.batch_size)
    if rates is not None:
        figures["peer single"], figures["peer batched"] = rates
        figures["peer-fields single"], figures["peer-fields batched"] = peer(
            tmp, args.events, args.batches, args.batch_size, fields=True
        )
    return figures


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="single appends (default 500)")
    parser.add_argument("--batches", type=int, default=20, help="batched appends (default 20)")
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch (default 100)")
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="embedded rounds, each measuring ours and the references in turn; figures are the median round's (default 3)",
    )
    parser.add_argument(
        "--history", type=int, default=0,
        help="earlier events appended to each of the 4 models before the embedded measurement (default 0)",
    )
    parser.add_argument("--switches", type=int, default=20, help="alternating-writer appends on Kafka (default 20)")
    parser.add_argument("--kafka", default=None, help="HOST:PORT (default: LEDGER_TEST_KAFKA or scripts/kafka.sh)")
    parser.add_argument("--no-kafka", action="store_true", help="only the embedded log")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures below are from this one run)")
    rounds: list[dict[str, Timed]] = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(_embedded_round(Path(tmp), args))
        ours = rounds[-1]
        print(
            f"  round {number + 1}: ours single {ours['ours single'].rate:.0f}/s, batched {ours['ours batched'].rate:.0f}/s; "
            f"SQLite single {ours['sqlite single'].rate:.0f}/s"
            + (f"; peer batched {ours['peer batched'].rate:.0f}/s" if "peer batched" in ours else "")
            + f"  (load {os.getloadavg()[0]:.1f})"
        )

    def line(key: str) -> str:
        # The round whose rate is the median, so wall and CPU figures belong together.
        ranked = sorted((figures[key] for figures in rounds), key=lambda timed: timed.rate)
        return str(ranked[len(ranked) // 2])

    def ratio(ours: str, reference: str) -> str:
        values = [figures[ours].rate / figures[reference].rate for figures in rounds]
        spread = f" (rounds {min(values):.0%}..{max(values):.0%})" if len(values) > 1 else ""
        return f"{_median(values):6.0%}{spread}"

    def cpu_ratio(reference: str, ours: str) -> str:
        values = [
            (figures[reference].cpu / figures[reference].count) / (figures[ours].cpu / figures[ours].count)
            for figures in rounds
        ]
        return f"{_median(values):6.0%}"

    median = f"median of {len(rounds)} rounds" if len(rounds) > 1 else "one round"
    past = f", {args.history:,} earlier events per model" if args.history else ""
    print(f"embedded (SQLite, synchronous=FULL), {median}{past}")
    print("  single  ", line("ours single"))
    print(f"  batched ({args.batch_size})", line("ours batched"))
    size = len(samples.snapshot("churn", "size").model_dump_json())
    print(f"SQLite itself, one {size}-byte row per transaction, WAL, synchronous=FULL")
    print("  single  ", line("sqlite single"))
    has_peer = "peer batched" in rounds[0]
    if not has_peer:
        print("peer (pyeventsourcing on SQLite): not installed (pip install eventsourcing)")
    else:
        print("peer (pyeventsourcing on SQLite, its defaults, its own one-string events)")
        print("  single  ", line("peer single"))
        print(f"  batched ({args.batch_size})", line("peer batched"))
        print("peer (pyeventsourcing on SQLite, its defaults, events carrying our snapshot's fields)")
        print("  single  ", line("peer-fields single"))
        print(f"  batched ({args.batch_size})", line("peer-fields batched"))
    print("same-run ratios of rates (median of the rounds' ratios), and of CPU per event (reference's / ours)")
    print(f"  ours single / SQLite single              {ratio('ours single', 'sqlite single')}  (target >= 75%)"
          f"  CPU {cpu_ratio('sqlite single', 'ours single')}")
    if has_peer:
        print(f"  ours batched / peer batched              {ratio('ours batched', 'peer batched')}  (target >= 100%)"
              f"  CPU {cpu_ratio('peer batched', 'ours batched')}")
        print(f"  ours batched / peer batched, same fields {ratio('ours batched', 'peer-fields batched')}"
              f"  CPU {cpu_ratio('peer-fields batched', 'ours batched')}")
        print(f"  ours single / peer single                {ratio('ours single', 'peer single')}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")

    bootstrap = None if args.no_kafka else (args.kafka or _default_kafka())
    if not bootstrap:
        print("kafka: no broker (give --kafka HOST:PORT or start scripts/kafka.sh)")
        return
    topic = f"ledger-bench-{uuid.uuid4().hex[:8]}"
    url = f"kafka://{bootstrap}/{topic}?partitions={args.partitions}"
    print(f"kafka ({bootstrap}, topic {topic}, {args.partitions} partitions, acks=all, transactional)")
    try:
        print("  single  ", single(url, args.events))
        print("  batched ", batched(url, args.batches, args.batch_size))
        print("  2 writers alternating", alternating(url, args.switches))
    finally:
        _drop_topic(bootstrap, topic)


if __name__ == "__main__":
    main()
