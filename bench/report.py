"""Report and metrics benchmark: seconds to compute `ledger metrics` and to write
`ledger report` over a synthetic ledger, and the report's size. Prints figures;
asserts nothing.

    python bench/report.py                        # 20 models x 10 rounds (~1.3k events), SQLite
    python bench/report.py --models 100 --rounds 10

The ledger (projections.synthetic.populate: full lifecycles with retrainings on
drift) is generated into a scratch embedded log and projected into SQLite views.
The report's per-version sections cost a few queries each, so its time grows with
the number of versions; metrics read four tables once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.backends.sqlite import SqliteLog  # noqa: E402
from projections import db, metrics, queries, report  # noqa: E402
from projections.runner import project  # noqa: E402
from projections.synthetic import populate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = SqliteLog(Path(scratch) / "log.db")
        events = populate(log, models=args.models, rounds=args.rounds, seed=1)
        engine = db.open_db(f"sqlite:///{Path(scratch) / 'views.db'}")
        project(log, engine)
        versions = sum(m["versions"] for m in queries.list_models(engine))
        print(f"ledger: {events} events, {args.models} models, {versions} versions")

        started = time.perf_counter()
        answer = metrics.compute(metrics.load_facts(engine))
        took = time.perf_counter() - started
        print(f"metrics: {took * 1000:.0f} ms ({len(answer.measurements)} measurements)")

        started = time.perf_counter()
        data = report.gather(engine)
        gathered = time.perf_counter() - started
        started = time.perf_counter()
        html = report.render_report(data)
        rendered = time.perf_counter() - started
        print(
            f"report: gather {gathered:.2f} s ({gathered / max(versions, 1) * 1000:.1f} ms per version), "
            f"render {rendered:.2f} s, {len(html.encode()) / 1e6:.1f} MB of HTML"
        )
        started = time.perf_counter()
        verification = report.verify_log(f"sqlite:///{Path(scratch) / 'log.db'}")
        print(f"verify for the report: {time.perf_counter() - started:.2f} s ({verification.summary})")
        engine.dispose()
        log.close()


if __name__ == "__main__":
    main()
