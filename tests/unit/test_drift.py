"""Drift math on known distributions: identical data scores about zero, shifted
data scores high, and the numbers agree with independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ledger.data import drift
from ledger.data.datasets import feature_stats
from ledger.errors import InputError
from ledger.events import DriftDetected


def _normal(n, loc=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(loc, scale, size=n)


REFERENCE = feature_stats("x", _normal(20_000, seed=1))


def test_identical_distribution_scores_near_zero():
    sample = _normal(5_000, seed=2)
    assert drift.psi(REFERENCE.quantiles, sample) < 0.02
    assert drift.ks(REFERENCE.quantiles, sample) < 0.03


def test_the_reference_sample_itself_scores_almost_exactly_zero():
    values = _normal(2_000, seed=3)
    stats = feature_stats("x", values)
    assert drift.psi(stats.quantiles, values) < 1e-3
    # Only the piecewise-linear approximation between percentiles separates them.
    assert drift.ks(stats.quantiles, values) < 0.01


@pytest.mark.parametrize("shift", [0.5, 1.0, 2.0])
def test_shifted_distribution_crosses_both_default_thresholds(shift):
    sample = _normal(2_000, loc=shift, seed=4)
    assert drift.psi(REFERENCE.quantiles, sample) > drift.DEFAULT_PSI_THRESHOLD
    assert drift.ks(REFERENCE.quantiles, sample) > drift.DEFAULT_KS_THRESHOLD


def test_scores_grow_with_the_shift():
    psis = [drift.psi(REFERENCE.quantiles, _normal(3_000, loc=s, seed=5)) for s in (0.0, 0.25, 0.5, 1.0)]
    kss = [drift.ks(REFERENCE.quantiles, _normal(3_000, loc=s, seed=5)) for s in (0.0, 0.25, 0.5, 1.0)]
    assert psis == sorted(psis)
    assert kss == sorted(kss)


def test_wider_spread_is_drift_for_psi_even_with_the_same_mean():
    sample = _normal(3_000, scale=2.0, seed=6)
    assert abs(sample.mean()) < 0.1
    assert drift.psi(REFERENCE.quantiles, sample) > drift.DEFAULT_PSI_THRESHOLD


@pytest.mark.parametrize("loc", [0.0, 0.3, 1.0])
def test_ks_agrees_with_scipy_against_the_true_cdf(loc):
    # Against a reference built from 20 000 draws, our KS must match scipy's
    # one-sample KS against the exact normal CDF up to the reference's own error.
    sample = _normal(1_500, loc=loc, seed=7)
    expected = scipy_stats.kstest(sample, scipy_stats.norm.cdf).statistic
    assert drift.ks(REFERENCE.quantiles, sample) == pytest.approx(expected, abs=0.02)


def test_psi_matches_the_formula_on_a_hand_computed_case():
    # Reference uniform on [0, 10]: deciles at 1..9, each bin holds 10%.
    quantiles = np.linspace(0.0, 10.0, 101)
    # New sample: 30% in the first bin, the rest spread evenly over the other nine.
    sample = np.concatenate([np.full(30, 0.5), np.repeat(np.arange(1.5, 10.0, 1.0), [8, 8, 8, 8, 8, 8, 8, 7, 7])])
    actual = np.bincount(np.clip(np.ceil(sample) - 1, 0, 9).astype(int), minlength=10) / sample.size
    expected = sum((a - 0.1) * math.log(a / 0.1) for a in actual)
    assert drift.psi(quantiles, sample) == pytest.approx(expected, rel=1e-9)


def test_empty_bins_give_a_large_finite_psi():
    quantiles = np.linspace(0.0, 1.0, 101)
    value = drift.psi(quantiles, np.full(100, 50.0))  # every value beyond the reference
    assert math.isfinite(value)
    assert value > 5


def test_point_masses_are_handled_for_binary_features():
    rng = np.random.default_rng(8)
    reference = feature_stats("flag", (rng.random(10_000) < 0.3).astype(float))
    same = (rng.random(2_000) < 0.3).astype(float)
    flipped = (rng.random(2_000) < 0.6).astype(float)
    assert drift.psi(reference.quantiles, same) < 0.01
    assert drift.ks(reference.quantiles, same) < 0.03
    assert drift.psi(reference.quantiles, flipped) > drift.DEFAULT_PSI_THRESHOLD
    # The KS distance of two Bernoulli laws is the difference of their rates.
    assert drift.ks(reference.quantiles, flipped) == pytest.approx(0.3, abs=0.04)


def test_constant_reference_and_constant_sample():
    reference = feature_stats("c", np.zeros(500))
    assert drift.psi(reference.quantiles, np.zeros(50)) == pytest.approx(0.0, abs=1e-12)
    assert drift.ks(reference.quantiles, np.zeros(50)) == 0.0
    assert drift.ks(reference.quantiles, np.ones(50)) == 1.0


def test_reference_cdf_is_monotone_and_hits_the_quantiles():
    q = np.array(REFERENCE.quantiles)
    grid = np.linspace(q[0] - 1, q[-1] + 1, 2_001)
    values = drift.reference_cdf(q, grid)
    assert np.all(np.diff(values) >= 0)
    assert values[0] == 0.0 and values[-1] == 1.0
    assert drift.reference_cdf(q, q[50])[0] == pytest.approx(0.5)


def _report(metric="psi", thresholds=None):
    reference = {
        "steady": feature_stats("steady", _normal(5_000, seed=10)),
        "moved": feature_stats("moved", _normal(5_000, seed=11)),
        "empty": feature_stats("empty", np.array([np.nan, np.nan])),
    }
    current = {
        "steady": _normal(1_000, seed=12),
        "moved": np.concatenate([_normal(1_000, loc=1.5, seed=13), [np.nan] * 10]),
        "empty": _normal(10, seed=14),
        "unknown": _normal(10, seed=15),
    }
    return drift.compare(reference, current, metric=metric, thresholds=thresholds)


def test_report_names_the_worst_feature_and_whether_it_crossed():
    report = _report()
    assert [s.feature for s in report.scores] == ["steady", "moved"]
    assert report.skipped == ("empty",)
    assert report.worst.feature == "moved"
    assert report.crossed
    moved = report.worst
    assert moved.count == 1_000 and moved.missing == 10
    assert report.drifted(report.scores[0]) == {"psi": False, "ks": False}
    assert report.drifted(moved) == {"psi": True, "ks": True}


def test_a_higher_threshold_is_not_crossed():
    report = _report("ks", drift.Thresholds(ks=0.99))
    assert report.threshold == 0.99
    assert not report.crossed


def test_the_drift_event_carries_every_feature_and_the_worst_value():
    report = _report("ks")
    event = report.event(
        model="m", version=2, environment="production", actor="monitor",
        reference_snapshot_id="ref", current_snapshot_id="new",
    )
    assert isinstance(event, DriftDetected)
    assert event.metric == "ks" and event.feature == "moved"
    assert event.value == report.worst.ks and event.threshold == drift.DEFAULT_KS_THRESHOLD
    assert event.crossed
    assert {d.feature for d in event.feature_drift} == {"steady", "moved"}


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_thresholds_must_be_positive_numbers(bad):
    with pytest.raises(InputError):
        drift.Thresholds(psi=bad)


def test_unknown_metric_and_nothing_to_compare_are_input_errors():
    with pytest.raises(InputError, match="metric"):
        drift.compare({"x": REFERENCE}, {"x": _normal(10)}, metric="wasserstein")
    with pytest.raises(InputError, match="no feature"):
        drift.compare({"x": REFERENCE}, {"y": _normal(10)})
