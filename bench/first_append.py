"""What a writer's first append costs: a fresh ``ledger emit`` process on a model
with a long stream, against the same on an empty model. Prints figures; asserts
nothing.

    python bench/first_append.py [--events 20000] [--runs 5] [--log PATH]
    python bench/first_append.py --kafka HOST:PORT [--kafka-events 100000] [--runs 5]

With ``--kafka``: a fresh ``ledger emit`` process (direct mode) and a freshly
started ``ledger serve`` (time until ``/readyz`` answers 200), on a partition
holding 1,000 and ``--kafka-events`` events (10 models, all on one partition), with
rule-state snapshots and without (``?snapshots=0``, the full read), in the same run.
The topics are kept on the broker (``ledger-bench-first-append-N``) and reused.

The long stream (one model: a deployed version and daily drift checks) is appended
once through the ordinary append path into ``--log`` (default: a file under
``~/.cache/ledger-bench``) and reused by later runs. Each measured run is a new
process (``python -m ledger.cli emit drift …``), so nothing is cached in memory:
before rule-state snapshots it folded and re-verified the whole stream.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger import samples
from ledger.backends.sqlite import SqliteLog
from ledger.client import Ledger
from ledger.events import DriftDetected, ModelApproved, ModelDeployed, ModelEvaluated, ModelTrained

MODEL = "daily"


def _drift(model: str, i: int) -> DriftDetected:
    return DriftDetected(
        model=model, version=1, actor="monitor", environment="production", metric="psi",
        value=0.1 + (i % 1000) / 10_000, threshold=0.2, reference_snapshot_id="s1",
    )


def _life(model: str) -> list:
    return [
        samples.snapshot(model, "s1"),
        ModelTrained(model=model, version=1, actor="trainer", snapshot_ids=("s1",), code_ref="git:1",
                     artifact_uri="s3://m/1", artifact_hash="sha256:1"),
        ModelEvaluated(model=model, version=1, actor="ci", evaluation_snapshot_id="s1", metrics={"auc": 0.9}, passed=True),
        ModelApproved(model=model, version=1, actor="reviewer"),
        ModelDeployed(model=model, version=1, actor="deployer", environment="production"),
    ]


def prepare(path: Path, events: int) -> int:
    with Ledger.open(f"sqlite:///{path}") as ledger:
        have = ledger.state(MODEL).sequence
        if have == 0:
            for draft in _life(MODEL):
                ledger.emit(draft)
            have = 5
            started = time.perf_counter()
        else:
            started = None
        while have < events:
            batch = [_drift(MODEL, have + i) for i in range(min(500, events - have))]
            ledger.emit_many(batch)
            have += len(batch)
        if started is not None:
            print(f"appended a stream of {have} events in {time.perf_counter() - started:.1f} s (once; cached in {path})")
        if ledger.state("fresh").sequence < 5:  # the small model of the comparison, in the same file
            for draft in _life("fresh")[ledger.state("fresh").sequence :]:
                ledger.emit(draft)
    return have


def emit_once(path: Path, model: str, i: int) -> float:
    event = {"model": model, "version": 1, "environment": "production", "metric": "psi",
             "value": 0.15, "threshold": 0.2, "reference_snapshot_id": "s1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--log", f"sqlite:///{path}", "emit", "drift", "--actor", "monitor",
         "--json", "-", "--brief"],
        input=json.dumps(event), capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ledger emit failed: {done.stderr.strip()}")
    return elapsed


def _kafka_models(url: str, count: int) -> list[str]:
    from ledger.config import open_log

    with open_log(url) as log:
        names = [f"bench-{i}" for i in range(500)]
        return [n for n in names if log.partition_for(n) == 0][:count]


def prepare_kafka(bootstrap: str, events: int) -> tuple[str, list[str]]:
    """A topic whose partition 0 holds ``events`` events of 10 models (kept, reused)."""
    from ledger.config import open_log

    # A generous timeout: the seeding runs on a shared, loaded broker.
    url = f"kafka://{bootstrap}/ledger-bench-first-append-{events}?partitions=3&timeout_ms=30000"
    models = _kafka_models(url, 10)
    with Ledger.open(url) as ledger:
        heads: dict[str, int] = {}
        for record in ledger.log.read():  # once: the sequence each model reached
            heads[record.model] = max(heads.get(record.model, 0), record.sequence or 0)
        if sum(heads.values()) >= events:
            return url, models
        started = time.perf_counter()
        per_model = events // len(models)
        for model in models:
            done = heads.get(model, 0)
            if done == 0:
                for draft in _life(model):
                    ledger.emit(draft)
                done = 5
            while done < per_model:
                batch = [_drift(model, done + i) for i in range(min(500, per_model - done))]
                ledger.emit_many(batch)
                done += len(batch)
        print(f"appended {events:,} events to {url} in {time.perf_counter() - started:.0f} s (once; kept on the broker)")
    with open_log(url) as log:
        assert log.partition_for(models[0]) == 0
    return url, models


def emit_kafka(url: str, model: str) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``ledger emit`` process."""
    event = {"model": model, "version": 1, "environment": "production", "metric": "psi",
             "value": 0.15, "threshold": 0.2, "reference_snapshot_id": "s1"}
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "--log", url, "emit", "drift", "--actor", "monitor", "--json", "-", "--brief"],
        input=json.dumps(event), capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"ledger emit failed: {done.stderr.strip()}")
    return elapsed, (after.children_user + after.children_system) - (before.children_user + before.children_system)


def serve_ready(url: str, workdir: Path) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.integration.service_harness import Server, make_principals

    principals = workdir / "principals.toml"
    if not principals.exists():
        make_principals(principals, {"writer": ["snapshot", "read"]})
    started = time.perf_counter()
    server = Server(url, principals, db_url=f"sqlite:///{workdir / f'views-{time.monotonic_ns()}.db'}")
    try:
        server.wait_ready(600)
        return time.perf_counter() - started
    finally:
        server.stop()


def main_kafka(args) -> int:
    sizes = (1_000, args.kafka_events)
    topics = {n: prepare_kafka(args.kafka, n) for n in sizes}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, suffix in (("snapshots", ""), ("full read", "&snapshots=0")):
            for n in sizes:
                url, models = topics[n]
                runs = [emit_kafka(url + suffix, models[i % len(models)]) for i in range(args.runs)]
                wall = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                ready = [serve_ready(url + suffix, Path(tmp)) for _ in range(args.serve_runs)]
                rows.append((label, n, wall, cpu, statistics.median(ready)))
                print(f"{label:9}  {n:>7,} events on the partition: fresh `ledger emit` median {wall * 1000:6.0f} ms "
                      f"({cpu * 1000:.0f} ms CPU), service ready median {statistics.median(ready):5.1f} s "
                      f"(load average {os.getloadavg()[0]:.1f})")
    for label in ("snapshots", "full read"):
        small, large = [r for r in rows if r[0] == label]
        print(f"{label}: {large[1]:,} vs {small[1]:,} events: emit {large[2] / small[2]:.2f}x, "
              f"service ready {large[4] / small[4]:.2f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the long stream (default 20000)")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes timed per model (default 5)")
    parser.add_argument("--log", type=Path, default=None, help="embedded log to create or reuse")
    parser.add_argument("--kafka", default=None, help="HOST:PORT: measure direct Kafka mode and the service instead")
    parser.add_argument("--kafka-events", type=int, default=100_000, help="events on the large partition (default 100000)")
    parser.add_argument("--serve-runs", type=int, default=2, help="service starts timed per topic (default 2)")
    args = parser.parse_args()
    if args.kafka:
        return main_kafka(args)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ledger-bench"
    path = args.log or cache / f"first-append-{args.events}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    have = prepare(path, args.events)
    # A copy per run of measurements, so the measured appends do not grow the stream.
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "log.db"
        SqliteLog(path).close()
        work.write_bytes(path.read_bytes())
        for suffix in ("-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                Path(f"{work}{suffix}").write_bytes(Path(f"{path}{suffix}").read_bytes())
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        small = [emit_once(work, "fresh", i) for i in range(args.runs)]
        long = [emit_once(work, MODEL, i) for i in range(args.runs)]
    small_median, long_median = statistics.median(small), statistics.median(long)
    print(f"fresh `ledger emit` on a model with 5 events:      median {small_median * 1000:7.0f} ms over {args.runs} processes")
    print(f"fresh `ledger emit` on a model with {have} events: median {long_median * 1000:7.0f} ms over {args.runs} processes"
          f"  ({long_median / small_median:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
