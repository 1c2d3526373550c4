"""Projection benchmark: events per second folded into SQLite and PostgreSQL, and
the latency of a depth-10 lineage query. Prints figures; asserts nothing.

    python bench/project.py                                   # 100k events, SQLite
    python bench/project.py --postgres postgresql+psycopg://postgres@127.0.0.1:15432/bench

The ledger is generated with :func:`projections.synthetic.populate` (many models
living full lifecycles with retrainings on drift) into an embedded log, once, and
kept in ``--log`` for later runs. The projection tables of every database named are
dropped and rebuilt from scratch (other tables are left alone), as ``ledger project
--rebuild`` does. The rate per CPU-second of the benchmark's own process is printed
beside the wall-clock one: on a shared machine it moves less with the load (for
PostgreSQL it leaves out the server's work).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ledger.backends.sqlite import SqliteLog
from projections import db, queries
from projections.asof import AsOf
from projections.lineage import version_node
from projections.runner import project
from projections.synthetic import populate

EVENTS_PER_ROUND = 6.6
"""About how many events one round of a synthetic model's life appends."""


def generate(log: SqliteLog, events: int, models: int) -> int:
    have = sum(1 for _ in log.read())
    if have >= events:
        return have
    rounds = math.ceil((events - have) / (models * EVENTS_PER_ROUND))
    started = time.perf_counter()
    batch = 0
    while have < events:
        batch += 1
        have += populate(log, models=models, rounds=rounds, seed=batch, prefix=f"b{batch}-model")
        rounds = max(1, math.ceil((events - have) / (models * EVENTS_PER_ROUND)))
    print(f"generated a ledger of {have} events ({models} models per generation) in {time.perf_counter() - started:.1f} s")
    return have


def lineage_latency(engine, models: list[str], samples: int, rng: random.Random) -> tuple[list[float], list[int]]:
    latest = {}
    for model in models:
        versions = queries.model_versions(engine, model)
        latest[model] = max(v["version"] for v in versions)
    timings, sizes = [], []
    for _ in range(samples):
        model = rng.choice(models)
        started = time.perf_counter()
        result = queries.lineage(engine, version_node(model, latest[model]), direction="up", depth=10)
        timings.append(time.perf_counter() - started)
        sizes.append(len(result["nodes"]))
    return timings, sizes


def as_of_latency(engine, samples: int, rng: random.Random) -> list[float]:
    audit = queries.audit(engine, limit=1)
    last = queries.audit(engine, event_type="ModelDeployed")[-1]["recorded_at"]
    first = audit[0]["recorded_at"]
    timings = []
    for _ in range(samples):
        instant = first if rng.random() < 0.1 else last
        started = time.perf_counter()
        queries.deployments(engine, as_of=AsOf(time=instant))
        timings.append(time.perf_counter() - started)
    return timings


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="size of the generated ledger (default 100000)")
    parser.add_argument("--models", type=int, default=500, help="models per generation (default 500)")
    parser.add_argument("--log", type=Path, default=None, help="embedded log file to create or reuse")
    parser.add_argument("--sqlite", default=None, help="SQLite URL for the views (default: a temporary file)")
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL for the views (skipped when absent)")
    parser.add_argument("--batch-size", type=int, default=None, help="records per transaction (default: a rebuild's own, 5000)")
    parser.add_argument("--samples", type=int, default=200, help="lineage queries timed per database")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    log = SqliteLog(args.log or workdir / "log.db")
    total = generate(log, args.events, args.models)
    model_names = sorted(log.models())
    targets = [("SQLite", args.sqlite or f"sqlite:///{workdir / 'views.db'}")]
    if args.postgres:
        targets.append(("PostgreSQL", args.postgres))

    size = args.batch_size or "a rebuild's own (5000)"
    print(f"ledger: {total} events, {len(model_names)} models; batch size {size}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, url in targets:
        engine = db.open_db(url)
        started, cpu = time.perf_counter(), time.process_time()
        report = project(log, engine, rebuild=True, batch_size=args.batch_size)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        rng = random.Random(1)
        timings, sizes = lineage_latency(engine, rng.sample(model_names, min(50, len(model_names))), args.samples, rng)
        as_of = as_of_latency(engine, 50, rng)
        print(
            f"{name:10}  projected {report.records} events in {elapsed:6.1f} s = {report.records / elapsed:7.0f} events/s"
            f" ({report.records / cpu:.0f} per CPU-second of this process)"
            f"  | depth-10 upstream lineage: median {ms(timings, 0.5):.1f} ms, p95 {ms(timings, 0.95):.1f} ms"
            f" ({statistics.mean(sizes):.0f} nodes)"
            f"  | deployments as of an instant: median {ms(as_of, 0.5):.1f} ms"
        )
        engine.dispose()
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
