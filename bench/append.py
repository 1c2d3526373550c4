"""How many events per second the append path accepts, per backend.

    python bench/append.py [--events 500] [--batches 20] [--batch-size 100]
                           [--switches 20] [--kafka HOST:PORT | --no-kafka]

Prints accepted events/s for
* single synchronous appends (``emit``; each waits until the event is durable),
* batched appends (``emit_many`` of ``--batch-size`` events, atomic),
* on Kafka also two writers alternating on one partition: every switch makes the
  new writer fence the other (``init_transactions``), the cost of the embedded
  single-writer protocol when processes interleave.

Beside the embedded figures it prints SQLite's own rate (one row per transaction,
synchronous=FULL) and, when ``eventsourcing`` is installed, the peer Python event
store's rates on SQLite, measured in the same run.

Each run uses a fresh SQLite file and a fresh Kafka topic (deleted afterwards).
The broker defaults to ``LEDGER_TEST_KAFKA``, else ``scripts/kafka.sh bootstrap``.
"""

from __future__ import annotations

import argparse
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


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:9.1f} events/s  ({count} events in {seconds:.2f} s, {1000 * seconds / count:.2f} ms/event)"


def single(url: str, events: int) -> str:
    with Ledger.open(url) as ledger:
        ledger.emit(samples.snapshot("warm-up"))  # connections and writer role, not measured
        drafts = [samples.snapshot(MODELS[i % len(MODELS)], f"single-{i}") for i in range(events)]
        started = time.perf_counter()
        for draft in drafts:
            ledger.emit(draft)
        return _rate(events, time.perf_counter() - started)


def batched(url: str, batches: int, size: int) -> str:
    with Ledger.open(url) as ledger:
        ledger.emit(samples.snapshot("warm-up", "batched"))
        groups = [
            [samples.snapshot(MODELS[b % len(MODELS)], f"batch-{b}-{i}") for i in range(size)] for b in range(batches)
        ]
        started = time.perf_counter()
        for group in groups:
            ledger.emit_many(group)
        return _rate(batches * size, time.perf_counter() - started)


def sqlite_rows(path: Path, rows: int, size: int) -> str:
    """SQLite's own rate: one INSERT per transaction, WAL, synchronous=FULL — the
    floor under any embedded append that is durable when it answers."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE rows (position INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, data BLOB)")
    payload = os.urandom(size)
    started = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO rows (key, data) VALUES (?, ?)", (f"row-{i}", payload))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return _rate(rows, elapsed)


def peer(path: Path, events: int, batches: int, size: int) -> tuple[str, str] | None:
    """pyeventsourcing's SQLite recorder, when installed (``pip install
    eventsourcing``): an aggregate's events saved one per transaction, then
    ``size`` per transaction. Its events are small (one string attribute); ours
    carry a data contract and statistics."""
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
        def note(self, text: str) -> None:
            pass

    def app(name: str) -> Application:
        return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path / name)})

    one = app("peer-single.db")
    stream = Stream("single")
    one.save(stream)
    started = time.perf_counter()
    for i in range(events):
        stream.note(f"single-{i}")
        one.save(stream)
    single_rate = _rate(events, time.perf_counter() - started)

    many = app("peer-batched.db")
    streams = [Stream(model) for model in MODELS]
    many.save(*streams)
    started = time.perf_counter()
    for b in range(batches):
        stream = streams[b % len(streams)]
        for i in range(size):
            stream.note(f"batch-{b}-{i}")
        many.save(stream)
    return single_rate, _rate(batches * size, time.perf_counter() - started)


def alternating(url: str, switches: int) -> str:
    with Ledger.open(url) as first, Ledger.open(url) as second:
        first.emit(samples.snapshot("ping-pong", "warm-up"))
        drafts = [samples.snapshot("ping-pong", f"switch-{i}") for i in range(switches)]
        started = time.perf_counter()
        for i, draft in enumerate(drafts):
            (second if i % 2 == 0 else first).emit(draft)
        return _rate(switches, time.perf_counter() - started)


def _drop_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="single appends (default 500)")
    parser.add_argument("--batches", type=int, default=20, help="batched appends (default 20)")
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch (default 100)")
    parser.add_argument("--switches", type=int, default=20, help="alternating-writer appends on Kafka (default 20)")
    parser.add_argument("--kafka", default=None, help="HOST:PORT (default: LEDGER_TEST_KAFKA or scripts/kafka.sh)")
    parser.add_argument("--no-kafka", action="store_true", help="only the embedded log")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures below are from this one run)")
    with tempfile.TemporaryDirectory() as tmp:
        print("embedded (SQLite, synchronous=FULL)")
        print("  single  ", single(f"sqlite:///{Path(tmp) / 'single.db'}", args.events))
        print("  batched ", batched(f"sqlite:///{Path(tmp) / 'batched.db'}", args.batches, args.batch_size))
        size = len(samples.snapshot("churn", "size").model_dump_json())
        print(f"SQLite itself, one {size}-byte row per transaction, WAL, synchronous=FULL")
        print("  single  ", sqlite_rows(Path(tmp) / "raw.db", args.events, size))
        rates = peer(Path(tmp), args.events, args.batches, args.batch_size)
        if rates is None:
            print("peer (pyeventsourcing on SQLite): not installed (pip install eventsourcing)")
        else:
            print("peer (pyeventsourcing on SQLite, its defaults)")
            print("  single  ", rates[0])
            print("  batched ", rates[1])

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
