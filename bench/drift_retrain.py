"""How long data checks, drift scores and a drift-triggered retraining take.

    python bench/drift_retrain.py [ROWS] [FEATURES]

Prints: CSV check + statistics throughput (rows/s) on synthetic data; PSI + KS time
per feature for the new sample; the standard pipeline's training time on
breast-cancer; and, on the embedded log, the time from a recorded drift alert to
the retrained version being recorded by the retraining consumer.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from consumers import store as consumer_store
from consumers.retrain import Retrainer, Settings
from consumers.runner import Runner
from ledger.data import datasets, drift, monitoring
from ledger.client import Ledger
from ledger.config import open_log
from ledger.events import ColumnSpec, DataContract


def _synthetic(path: Path, rows: int, features: int, shift: float) -> None:
    rng = np.random.default_rng(int(shift * 10))
    data = rng.normal(shift, 1.0, size=(rows, features))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{j}" for j in range(features)])
        writer.writerows(data.tolist())


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    features = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        contract = DataContract(columns=tuple(ColumnSpec(name=f"f{j}") for j in range(features)))
        _synthetic(tmp / "ref.csv", rows, features, 0.0)
        _synthetic(tmp / "new.csv", rows, features, 0.3)

        start = time.perf_counter()
        reference = datasets.validate(datasets.read_csv(tmp / "ref.csv"), contract)
        stats = reference.feature_stats()
        _ = reference.content_hash
        took = time.perf_counter() - start
        print(f"check + stats + hash: {rows} rows x {features} features in {took:.2f}s ({rows / took:,.0f} rows/s)")

        new = datasets.validate(datasets.read_csv(tmp / "new.csv"), contract)
        start = time.perf_counter()
        report = drift.compare(stats, {n: new.columns[n].values for n in new.feature_names})
        took = time.perf_counter() - start
        print(f"PSI + KS: {features} features x {rows} new rows in {took * 1000:.1f} ms "
              f"({took * 1000 / features:.1f} ms per feature); worst psi {report.value:.3f}")

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
        from drift_world import deploy_first_version, write_files

        files = write_files(tmp / "world")
        log_url, db_url = f"sqlite:///{tmp / 'log.db'}", f"sqlite:///{tmp / 'views.db'}"
        store = datasets.DataStore(tmp / "data")
        with Ledger.open(log_url) as ledger:
            start = time.perf_counter()
            deploy_first_version(ledger, "cancer", files, store=store, artifacts=tmp / "artifacts")
            print(f"snapshot + train + evaluate + record v1 (breast-cancer, 284 rows): {time.perf_counter() - start:.2f}s")
            start = time.perf_counter()
            check = monitoring.check_drift(ledger, "cancer", 1, files.shifted, store=store)
            print(f"drift check (285 rows, 30 features, snapshot + alert recorded): {time.perf_counter() - start:.2f}s")
        assert check.alert is not None
        consumer = Retrainer(log_url, Settings(artifacts_dir=tmp / "artifacts"), env={})
        event_log = open_log(log_url)
        start = time.perf_counter()
        report = Runner(consumer, event_log, db_url).run_once(max_wait=0)
        took = time.perf_counter() - start
        consumer.close()
        event_log.close()
        consumer_store.dispose_engines()
        print(f"alert -> retrained v2 recorded by the consumer: {took:.2f}s ({report.delivered} delivered)")


if __name__ == "__main__":
    main()
