"""Projection benchmark: events per second folded into SQLite and PostgreSQL, and
the latency of a depth-10 lineage query. Prints figures; asserts nothing.

    python bench/project.py                                   # 100k events, SQLite
    python bench/project.py --postgres postgresql+psycopg://postgres@127.0.0.1:15432/bench
    python bench/project.py --log /work/benchdata/p100k.db --samples 20 --read-ahead both

The ledger is generated with :func:`projections.synthetic.populate` (many models
living full lifecycles with retrainings on drift) into an embedded log, once, and
kept in ``--log`` for later runs. The projection tables of every database named are
dropped and rebuilt from scratch (other tables are left alone), as ``ledger project
--rebuild`` does. The rate per CPU-second of the benchmark's own process is printed
beside the wall-clock one: on a shared machine it moves less with the load (for
PostgreSQL it leaves out the server's work).

``--read-ahead both`` rebuilds twice in the same run, decoding in a thread beside
the writes (the runner's default) and in the applying thread, so the two can be
compared under the same load.

The ``ceiling`` line is the database's own rate for the rows this run wrote: the
final rows of every projection table are read back, the tables dropped and created
again, and the rows inserted as plain tuples by the same bulk path the folds use
(prepared ``executemany`` on SQLite, ``COPY`` on PostgreSQL) with no fold, in as
many transactions as the run committed, with the load's settings (commits not
waiting for the disk, query-only indexes built at the end, a durable sync last).
It is printed as events/s so the fold's figure reads as a share of it. It writes
no UPDATE (the fold closes state rows and deployments with UPDATEs), so it is an
upper bound.
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

from sqlalchemy import select
from sqlalchemy.schema import DropIndex

from ledger.backends.sqlite import SqliteLog
from projections import bulk, db, queries, tables
from projections.asof import AsOf
from projections.lineage import version_node
from projections.runner import _deferred_indexes, project
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
    """Upstream lineage of the latest version of models drawn from ``models``; a
    model with no version (only snapshots, say) has no version node and is left out."""
    latest = {}
    for model in models:
        versions = queries.model_versions(engine, model)
        if versions:
            latest[model] = max(v["version"] for v in versions)
    timings, sizes = [], []
    if not latest:
        return timings, sizes
    drawn = [m for m in models if m in latest]
    for _ in range(samples):
        model = rng.choice(drawn)
        started = time.perf_counter()
        result = queries.lineage(engine, version_node(model, latest[model]), direction="up", depth=10)
        timings.append(time.perf_counter() - started)
        sizes.append(len(result["nodes"]))
    return timings, sizes


def as_of_latency(engine, samples: int, rng: random.Random) -> list[float]:
    audit = queries.audit(engine, limit=1)
    deployed = queries.audit(engine, event_type="ModelDeployed")
    if not audit or not deployed:
        return []
    last = deployed[-1]["recorded_at"]
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


def latencies(timings: list[float], sizes: list[int], as_of: list[float]) -> str:
    lineage = (
        f"median {ms(timings, 0.5):.1f} ms, p95 {ms(timings, 0.95):.1f} ms ({statistics.mean(sizes):.0f} nodes)"
        if timings else "n/a (no model has a version)"
    )
    deployments = f"median {ms(as_of, 0.5):.1f} ms" if as_of else "n/a (nothing deployed)"
    return f"depth-10 upstream lineage: {lineage}  | deployments as of an instant: {deployments}"


def ceiling(engine, batches: int) -> tuple[float, float, int]:
    """``(wall s, CPU s, rows)`` to insert the rows the fold left in ``engine``'s
    projection tables into fresh copies of them, with no fold (see the module
    docstring). The reading back is not timed."""
    captured = []
    with engine.connect() as conn:
        for table in tables.ALL:
            if table is tables.meta:
                continue  # written by db.create itself
            columns = tuple(c.name for c in table.columns)
            captured.append((table, columns, [tuple(row) for row in conn.execute(select(table))]))
    db.drop(engine)
    db.create(engine)
    batches = max(1, batches)
    started, cpu = time.perf_counter(), time.process_time()
    with db.writing(engine, "durable") as conn:
        for index in _deferred_indexes():
            conn.execute(DropIndex(index, if_exists=True))
    for k in range(batches):
        with db.writing(engine, "load") as conn:
            for table, columns, rows in captured:
                n = len(rows)
                bulk.insert_values(conn, table, columns, rows[k * n // batches : (k + 1) * n // batches])
    with db.writing(engine, "load") as conn:
        for index in _deferred_indexes():
            index.create(conn, checkfirst=True)
    db.settle(engine)
    return time.perf_counter() - started, time.process_time() - cpu, sum(len(rows) for _, _, rows in captured)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="size of the generated ledger (default 100000)")
    parser.add_argument("--models", type=int, default=500, help="models per generation (default 500)")
    parser.add_argument("--log", type=Path, default=None, help="embedded log file to create or reuse")
    parser.add_argument("--sqlite", default=None, help="SQLite URL for the views (default: a temporary file)")
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL for the views (skipped when absent)")
    parser.add_argument("--batch-size", type=int, default=None, help="records per transaction (default: a rebuild's own, 5000)")
    parser.add_argument("--samples", type=int, default=200, help="lineage queries timed per database")
    parser.add_argument(
        "--read-ahead", choices=("on", "off", "both"), default="both",
        help="decode the next batch in a thread while one is written (on, the runner's default), "
        "in the applying thread (off), or rebuild once each way (both, default)",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the database's own rate for the same rows")
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
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.read_ahead]
    for name, url in targets:
        engine = db.open_db(url)
        rates = {}
        for read_ahead in modes:
            started, cpu = time.perf_counter(), time.process_time()
            report = project(log, engine, rebuild=True, batch_size=args.batch_size, read_ahead=read_ahead)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            rng = random.Random(1)
            timings, sizes = lineage_latency(engine, rng.sample(model_names, min(50, len(model_names))), args.samples, rng)
            as_of = as_of_latency(engine, 50, rng)
            how = "read-ahead thread" if read_ahead else "no read-ahead"
            rates[how] = report.records / elapsed
            print(
                f"{name:10}  projected {report.records} events in {elapsed:6.1f} s = {report.records / elapsed:7.0f} events/s"
                f" ({report.records / cpu:.0f} per CPU-second of this process; {how}; load {os.getloadavg()[0]:.1f})"
                f"  | {latencies(timings, sizes, as_of)}"
            )
        if not args.no_ceiling:
            wall, cpu, rows = ceiling(engine, report.batches)
            print(
                f"{name:10}  ceiling: the same {rows} rows inserted with no fold in {wall:6.1f} s = "
                f"{report.records / wall:7.0f} events/s ({report.records / cpu:.0f} per CPU-second of this process;"
                f" load {os.getloadavg()[0]:.1f}); the fold ran at "
                + ", ".join(f"{100 * rate / (report.records / wall):.0f}% of it ({how})" for how, rate in rates.items())
            )
        engine.dispose()
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
