"""Drift on real data that scikit-learn ships, through the CSV path a user takes:
write the files, check them against the contract, summarise the reference, score
the new sample.

Digits (1 797 images, 64 pixel features) is large enough that two random halves
agree within both thresholds on every feature; on the 569 rows of breast-cancer a
random half already reaches KS 0.1 on some of its 30 features by chance (the KS
threshold suits a few hundred rows *per comparison*), so breast-cancer is used
below only feature by feature.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from ledger.data import datasets, drift
from ledger.events import ColumnSpec, DataContract


def _write(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def digits():
    bunch = load_digits()
    names = list(bunch.feature_names)
    contract = DataContract(
        columns=(
            *(ColumnSpec(name=n, dtype="int", minimum=0, maximum=16) for n in names),
            ColumnSpec(name="digit", dtype="int"),
        ),
        target="digit",
    )
    return names, bunch.data, bunch.target, contract


def _halves(n, seed):
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2 :]


def _score(tmp_path, names, contract, reference_rows, new_rows, metric="psi"):
    header = [*names, "digit"]
    reference = datasets.validate(
        datasets.read_csv(_write(tmp_path / "reference.csv", header, reference_rows)), contract
    )
    new = datasets.validate(datasets.read_csv(_write(tmp_path / "new.csv", header, new_rows)), contract)
    return drift.compare(
        reference.feature_stats(),
        {name: new.columns[name].values for name in new.feature_names},
        metric=metric,
    )


def _rows(X, y, index):
    return [[*(int(v) for v in X[i]), int(y[i])] for i in index]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_halves_of_digits_do_not_drift(tmp_path, digits, seed):
    names, X, y, contract = digits
    first, second = _halves(len(X), seed)
    report = _score(tmp_path, names, contract, _rows(X, y, first), _rows(X, y, second))
    assert len(report.scores) == 64
    assert max(s.psi for s in report.scores) < drift.DEFAULT_PSI_THRESHOLD
    assert max(s.ks for s in report.scores) < drift.DEFAULT_KS_THRESHOLD
    assert not report.crossed


def test_digits_sampled_by_a_pixel_quantile_drift(tmp_path, digits):
    # Selection bias: the new sample keeps only images whose centre pixel is
    # brighter than its median — a different mix of digits.
    names, X, y, contract = digits
    first, second = _halves(len(X), 0)
    centre = names.index("pixel_4_4")
    biased = [i for i in second if X[i, centre] > np.median(X[:, centre])]
    for metric in ("psi", "ks"):
        report = _score(tmp_path, names, contract, _rows(X, y, first), _rows(X, y, biased), metric)
        assert report.crossed, metric
        assert report.value > 2 * report.threshold
    # The pixels the selection acts on are among the most drifted.
    ranked = sorted(report.scores, key=lambda s: s.ks, reverse=True)
    assert "pixel_4_4" in [s.feature for s in ranked[:5]]


def test_digits_with_a_brighter_sensor_drift(tmp_path, digits):
    # A gain change in the camera: every intensity times 1.5 (past the contract's
    # maximum 16 is refused, so clip as a saturating sensor would).
    names, X, y, contract = digits
    first, second = _halves(len(X), 0)
    brighter = np.clip(np.rint(X * 1.5), 0, 16)
    report = _score(tmp_path, names, contract, _rows(X, y, first), _rows(brighter, y, second))
    assert report.crossed
    assert sum(report.drifted(s)["psi"] for s in report.scores) > 10


@pytest.fixture(scope="module")
def cancer():
    bunch = load_breast_cancer()
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    contract = DataContract(
        columns=(
            ColumnSpec(name="mean_radius", unit="mm"),
            *(ColumnSpec(name=n) for n in names[1:]),
            ColumnSpec(name="malignant", dtype="int"),
        ),
        target="malignant",
    )
    return names, bunch.data, bunch.target, contract


def _cancer_report(tmp_path, cancer, radius_header, radius_scale):
    names, X, y, contract = cancer
    first, second = _halves(len(X), 0)

    def rows(index, scale):
        return [[X[i, 0] * scale, *X[i, 1:], y[i]] for i in index]

    reference = datasets.validate(
        datasets.read_csv(_write(tmp_path / "ref.csv", [*names, "malignant"], rows(first, 1.0))), contract
    )
    header = [radius_header, *names[1:], "malignant"]
    new = datasets.validate(datasets.read_csv(_write(tmp_path / "new.csv", header, rows(second, radius_scale))), contract)
    report = drift.compare(reference.feature_stats(), {n: new.columns[n].values for n in new.feature_names})
    return {s.feature: s for s in report.scores}["mean_radius"]


def test_new_data_in_other_units_is_converted_and_does_not_drift(tmp_path, cancer):
    # The new extract measures the radius in centimetres and says so in its header.
    radius = _cancer_report(tmp_path, cancer, "mean_radius[cm]", 0.1)
    assert radius.psi < drift.DEFAULT_PSI_THRESHOLD


def test_unlabelled_unit_change_shows_up_as_drift(tmp_path, cancer):
    # Same centimetre values without the unit in the header: read as millimetres,
    # the feature has moved by a factor of ten — exactly what drift must catch.
    radius = _cancer_report(tmp_path, cancer, "mean_radius", 0.1)
    assert radius.psi > 10 * drift.DEFAULT_PSI_THRESHOLD
    assert radius.ks > 0.9
