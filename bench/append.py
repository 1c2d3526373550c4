"""How many events per second the append path accepts, per backend.

    python bench/append.py [--events 500] [--batches 20] [--batch-size 100]
                           [--switches 20] [--kafka HOST:PORT | --no-kafka]

Prints accepted events/s for
* single synchronous appends (``emit``; each waits until the event is durable),
* batched appends (``emit_many`` of ``--batch-size`` events, atomic),
* on Kafka also two writers alternating on one partition: every switch makes the
  new writer fence the other (``init_transactions``), the cost of the embedded
  single-writer protocol when processes interleave.

Each run uses a fresh SQLite file and a fresh Kafka topic (deleted afterwards).
The broker defaults to ``LEDGER_TEST_KAFKA``, else ``scripts/kafka.sh bootstrap``.
"""

from __future__ import annotations

import argparse
import os
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

    with tempfile.TemporaryDirectory() as tmp:
        print("embedded (SQLite, synchronous=FULL)")
        print("  single  ", single(f"sqlite:///{Path(tmp) / 'single.db'}", args.events))
        print("  batched ", batched(f"sqlite:///{Path(tmp) / 'batched.db'}", args.batches, args.batch_size))

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
