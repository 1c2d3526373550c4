"""Drift between a reference snapshot and new data, per feature. Pure: no I/O.

The reference is not the old rows but their summary recorded in the snapshot's
``FeatureStats``: the values at the probabilities 0, 0.01, …, 1. Read as the
points of a piecewise-linear cumulative distribution function (CDF) ``F``, they
approximate the reference distribution closely enough for both measures below.

Population stability index (PSI)
    Bins are the reference deciles (the quantiles at 0.1 … 0.9, repeated values
    merged, so a feature with point masses gets fewer, unequal bins); the outer
    bins are open, so new values beyond the reference range count in the end bins.
    Bins are right-closed, ``(e[i-1], e[i]]``. With ``E_i = F(e[i]) - F(e[i-1])`` the
    reference share and ``A_i`` the new sample's share of each bin, both floored at
    ``epsilon`` = 1e-4 so an empty bin contributes a large but finite term::

        PSI = Σ_i (A_i - E_i) · ln(A_i / E_i)

    Common practice (Siddiqi, *Credit Risk Scorecards*, 2006, and most model
    monitoring tools since): below 0.1 no meaningful shift, 0.1–0.25 a moderate
    shift worth watching, above 0.25 a major shift. The default threshold 0.2
    sits in the upper part of the "moderate" band and is a widely used alert level.

Kolmogorov–Smirnov statistic (KS)
    ``D = sup_x |F(x) - G(x)|`` with ``G`` the new sample's empirical CDF. ``G`` is a
    step function and ``F`` is monotone, so the supremum is reached at a sample
    point, from the left or the right: both are evaluated, exactly. The default
    threshold 0.1 (a 10-point gap between the CDFs somewhere) is a common practical
    cut on samples of a few hundred rows or more; on smaller samples pure chance
    reaches it (the 5% critical value is about 1.36/√n), so compare with care.

Missing values are left out of both measures (the snapshot counts them apart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ledger.errors import InputError
from ledger.events import DriftDetected, FeatureDrift, FeatureStats

DEFAULT_PSI_THRESHOLD = 0.2
DEFAULT_KS_THRESHOLD = 0.1
DEFAULT_BINS = 10
EPSILON = 1e-4
METRICS = ("psi", "ks")


def _probabilities(quantiles: np.ndarray) -> np.ndarray:
    return np.linspace(0.0, 1.0, quantiles.size)


def reference_cdf(quantiles, x, *, left: bool = False) -> np.ndarray:
    """``F(x)`` (or its left limit ``F(x⁻)``) of the piecewise-linear CDF through
    the points ``(quantiles[k], k/(n-1))``.

    Repeated quantile values are point masses: ``F`` jumps there, to the highest
    probability of the run (right-continuous); the left limit is the lowest."""
    q = np.asarray(quantiles, dtype=float)
    x = np.atleast_1d(np.asarray(x, dtype=float))
    if q.size == 0:
        raise InputError("the reference has no quantiles")
    if q.size == 1:
        return np.where(x > q[0] if left else x >= q[0], 1.0, 0.0)
    p = _probabilities(q)
    # j = number of quantiles below x (left limit) or at most x (the value itself);
    # q[j-1] is then the last point of its run of equal values and q[j] > q[j-1].
    j = np.searchsorted(q, x, side="left" if left else "right")
    out = np.empty_like(x)
    below, above = j == 0, j == q.size
    out[below], out[above] = 0.0, 1.0
    inside = ~(below | above)
    k = j[inside]
    lo, hi = q[k - 1], q[k]
    out[inside] = p[k - 1] + (p[k] - p[k - 1]) * (x[inside] - lo) / (hi - lo)
    return out


def decile_edges(quantiles, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner bin edges: the reference quantiles at 1/bins … (bins-1)/bins, merged."""
    q = np.asarray(quantiles, dtype=float)
    inner = np.interp(np.arange(1, bins) / bins, _probabilities(q), q)
    return np.unique(inner)


def psi(quantiles, sample, *, bins: int = DEFAULT_BINS, epsilon: float = EPSILON) -> float:
    sample = np.asarray(sample, dtype=float)
    if sample.size == 0:
        raise InputError("cannot compute PSI on an empty sample")
    edges = decile_edges(quantiles, bins)
    cdf = np.concatenate(([0.0], reference_cdf(quantiles, edges), [1.0]))
    expected = np.diff(cdf)
    # searchsorted(side="left") counts the edges strictly below a value: the index
    # of its right-closed bin.
    actual = np.bincount(np.searchsorted(edges, sample, side="left"), minlength=edges.size + 1) / sample.size
    expected = np.maximum(expected, epsilon)
    actual = np.maximum(actual, epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(quantiles, sample) -> float:
    sample = np.sort(np.asarray(sample, dtype=float))
    n = sample.size
    if n == 0:
        raise InputError("cannot compute KS on an empty sample")
    # G just after the last copy of each value and just before the first copy.
    after = np.searchsorted(sample, sample, side="right") / n
    before = np.searchsorted(sample, sample, side="left") / n
    gap_right = np.abs(reference_cdf(quantiles, sample) - after)
    gap_left = np.abs(reference_cdf(quantiles, sample, left=True) - before)
    return float(max(gap_right.max(), gap_left.max()))


@dataclass(frozen=True)
class FeatureScore:
    feature: str
    psi: float
    ks: float
    count: int
    missing: int
    reference_mean: float | None
    current_mean: float

    def value(self, metric: str) -> float:
        return self.psi if metric == "psi" else self.ks


@dataclass(frozen=True)
class Thresholds:
    psi: float = DEFAULT_PSI_THRESHOLD
    ks: float = DEFAULT_KS_THRESHOLD

    def __post_init__(self):
        for name in METRICS:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"the {name} threshold must be a positive number, not {value!r}")

    def of(self, metric: str) -> float:
        return getattr(self, metric)


@dataclass(frozen=True)
class DriftReport:
    scores: tuple[FeatureScore, ...]
    metric: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    skipped: tuple[str, ...] = ()
    """Features that could not be scored (no reference quantiles or no new values)."""

    @property
    def threshold(self) -> float:
        return self.thresholds.of(self.metric)

    @property
    def worst(self) -> FeatureScore:
        """The feature with the highest score by the chosen metric (first on ties)."""
        return max(self.scores, key=lambda s: s.value(self.metric))

    @property
    def value(self) -> float:
        return self.worst.value(self.metric)

    @property
    def crossed(self) -> bool:
        return self.value >= self.threshold

    def drifted(self, score: FeatureScore) -> dict[str, bool]:
        return {m: score.value(m) >= self.thresholds.of(m) for m in METRICS}

    def event(
        self,
        *,
        model: str,
        version: int,
        environment: str,
        actor: str,
        reference_snapshot_id: str,
        current_snapshot_id: str | None,
        **envelope,
    ) -> DriftDetected:
        """The ``DriftDetected`` draft: the worst feature's value, every feature's scores."""
        worst = self.worst
        return DriftDetected(
            model=model,
            version=version,
            environment=environment,
            actor=actor,
            metric=self.metric,
            feature=worst.feature,
            value=worst.value(self.metric),
            threshold=self.threshold,
            reference_snapshot_id=reference_snapshot_id,
            current_snapshot_id=current_snapshot_id,
            feature_drift=tuple(FeatureDrift(feature=s.feature, psi=s.psi, ks=s.ks) for s in self.scores),
            **envelope,
        )


def compare(
    reference: Mapping[str, FeatureStats] | tuple[FeatureStats, ...],
    current: Mapping[str, np.ndarray],
    *,
    metric: str = "psi",
    thresholds: Thresholds | None = None,
    bins: int = DEFAULT_BINS,
) -> DriftReport:
    """Score every feature present in both ``reference`` (stats) and ``current``
    (the new values, NaN for missing)."""
    if metric not in METRICS:
        raise InputError(f"unknown drift metric {metric!r}: use psi or ks")
    if not isinstance(reference, Mapping):
        reference = {s.name: s for s in reference}
    scores, skipped = [], []
    for name, stats in reference.items():
        if name not in current:
            continue
        values = np.asarray(current[name], dtype=float)
        observed = values[~np.isnan(values)]
        if not stats.quantiles or observed.size == 0:
            skipped.append(name)
            continue
        scores.append(
            FeatureScore(
                feature=name,
                psi=psi(stats.quantiles, observed, bins=bins),
                ks=ks(stats.quantiles, observed),
                count=int(observed.size),
                missing=int(values.size - observed.size),
                reference_mean=stats.mean,
                current_mean=float(observed.mean()),
            )
        )
    if not scores:
        raise InputError("no feature could be compared: the reference and the new data share no scored feature")
    return DriftReport(tuple(scores), metric, thresholds or Thresholds(), tuple(skipped))
