"""A small world for drift and retraining tests: breast-cancer data split in two,
a version trained on the first half and deployed, and new data to check.

Not a test module: the retraining, drift CLI and end-to-end tests import it.
"""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from consumers import training
from ledger.data import datasets, monitoring
from ledger.events import ColumnSpec, DataContract, ModelApproved, ModelDeployed, ModelTrained


@dataclass(frozen=True)
class Files:
    root: Path
    contract: Path
    reference: Path
    same: Path
    """The other half of the data, as it is: no drift."""
    shifted: Path
    """The other half with ``mean_radius`` 30% larger: drift."""
    shifted_more: Path
    """The other half with ``mean_radius`` 60% larger: another drift."""


def contract_of(names: list[str]) -> DataContract:
    return DataContract(
        columns=(
            ColumnSpec(name=names[0], unit="mm", minimum=0),
            *(ColumnSpec(name=n, minimum=0) for n in names[1:]),
            ColumnSpec(name="malignant", dtype="int", minimum=0, maximum=1),
        ),
        sampling="one row per patient",
        target="malignant",
    )


def write_files(root: Path) -> Files:
    root.mkdir(parents=True, exist_ok=True)
    bunch = load_breast_cancer()
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    order = np.random.default_rng(0).permutation(len(bunch.data))
    first, second = order[: len(order) // 2], order[len(order) // 2 :]

    def write(name: str, index, radius_scale: float = 1.0) -> Path:
        path = root / name
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([f"{names[0]}[mm]", *names[1:], "malignant"])
            for i in index:
                row = [float(v) for v in bunch.data[i]]
                row[0] *= radius_scale
                writer.writerow([*(repr(v) for v in row), int(bunch.target[i])])
        return path

    contract = root / "contract.json"
    contract.write_text(contract_of(names).model_dump_json(indent=2))
    return Files(
        root,
        contract,
        write("reference.csv", first),
        write("same.csv", second),
        write("shifted.csv", second, 1.3),
        write("shifted_more.csv", second, 1.6),
    )


def deploy_first_version(ledger, model: str, files: Files, *, store: datasets.DataStore, artifacts: Path) -> ModelTrained:
    """Snapshot the reference data, train v1 (alice), approve (bob), deploy (carol)."""
    registered = monitoring.register_snapshot(
        ledger,
        model,
        dataset=f"{model}-data",
        contract=DataContract.model_validate_json(files.contract.read_text()),
        path=files.reference,
        actor="alice",
        store=store,
    )
    result = training.train_and_record(
        ledger, model, registered.snapshot.snapshot_id, "alice", artifacts_dir=artifacts
    )
    ledger.emit(ModelApproved(model=model, version=1, actor="bob", reason="good enough"))
    ledger.emit(ModelDeployed(model=model, version=1, actor="carol", environment="production"))
    return result.trained.event


def events_of(ledger, model: str, cls=None) -> list:
    return [e for e in ledger.events(model) if cls is None or isinstance(e, cls)]


@pytest.fixture
def own_postgres(postgres_url):
    """A database of this test's own on the shared PostgreSQL server, dropped after:
    other engineers' tests on the same server never see it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"retrain_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from consumers import store

        store.dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def notifications(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
