"""What a writer's first append costs: a fresh ``ledger emit`` process on a model
with a long stream, against the same on an empty model. Prints figures; asserts
nothing.

    python bench/first_append.py [--events 20000] [--runs 5] [--log PATH]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the long stream (default 20000)")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes timed per model (default 5)")
    parser.add_argument("--log", type=Path, default=None, help="embedded log to create or reuse")
    args = parser.parse_args()
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
