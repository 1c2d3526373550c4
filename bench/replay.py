"""An auditor's full replay: ``ledger replay`` of a large embedded log into a fresh
SQLite database, with verification. Prints the time and the replay process's peak
memory; asserts nothing.

    python bench/replay.py [--events 1000000] [--models 5000] [--log PATH]

The log is generated once with :func:`projections.synthetic.populate_rounds` (every
event decided, sequenced and chained by the append path, a thousand model appends
per transaction as a group commit does) and cached under ``~/.cache/ledger-bench/``
(or ``--log``); later runs reuse it. The replay runs as its own process
(``python -m ledger.cli … replay --json``; it verifies the log in a second process of
its own meanwhile), so its figures are measured alone: wall time, CPU-seconds of
both processes, and the peak RSS of the larger one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger.backends.sqlite import SqliteLog
from projections.synthetic import populate_rounds

EVENTS_PER_ROUND = 6.6


def generate(log: SqliteLog, events: int, models: int) -> int:
    have = log.end_offsets()[0] - 1
    batch = 0
    started = time.perf_counter()
    while have < events:
        batch += 1
        rounds = max(1, math.ceil((events - have) / (models * EVENTS_PER_ROUND)))
        have += populate_rounds(log, models=models, rounds=rounds, seed=have * 100 + batch, prefix=f"r{batch}-{have}-model")
        print(f"  generated {have} events so far ({time.perf_counter() - started:.0f} s)", flush=True)
    return have


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log (default 1000000)")
    parser.add_argument("--models", type=int, default=5000, help="models per generation (default 5000)")
    parser.add_argument("--log", type=Path, default=None, help="embedded log to create or reuse")
    args = parser.parse_args()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ledger-bench"
    path = args.log or cache / f"replay-{args.events}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    log = SqliteLog(path)
    total = generate(log, args.events, args.models)
    log.close()

    with tempfile.TemporaryDirectory() as tmp:
        views = f"sqlite:///{Path(tmp) / 'audit.db'}"
        print(f"replaying {total} events from {path}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "--log", f"sqlite:///{path}", "replay", "--db", views, "--json"],
            capture_output=True, text=True, check=False,
        )
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
        peak_mb = usage.ru_maxrss / 1024  # kB on Linux; the largest of the processes waited for
    if done.returncode not in (0, 1):
        print(f"replay failed (exit {done.returncode}): {done.stderr.strip()}")
        return 1
    summary = json.loads(done.stdout)
    verified = summary.get("verified") or {}
    print(
        f"replay + verify: {summary['records']} records in {elapsed:.1f} s = {summary['records'] / elapsed:,.0f} records/s "
        f"({cpu:.1f} CPU-seconds); peak RSS {peak_mb:,.0f} MB; verification ok: {verified.get('ok')}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
