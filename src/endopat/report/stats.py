"""Statistics beyond the paper: paired bootstrap CIs, Wilcoxon tests, monotone curves and label
savings (the hierarchical bootstrap of a study is :mod:`endopat.report.bootstrap`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired items and its percentile bootstrap CI (items resampled)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.size == 0:
        raise ValueError("no paired values")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (n_boot, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(d.mean()), float(lo), float(hi)


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired values (1.0 when all differences are 0)."""
    from scipy.stats import wilcoxon  # heavy: imported when used

    d = np.asarray(a, float) - np.asarray(b, float)
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox").pvalue)


def labels_to_reach(labels: Sequence[float], scores: Sequence[float], target: float) -> tuple[float | None, str]:
    """Labels at which a curve first reaches ``target``, interpolated linearly in log2(labels).

    Returns ``(n, how)``: ``how`` is ``"interpolated"``, ``"at most"`` (already above the target at
    the smallest label count, so ``n`` is an upper bound) or ``"not reached"`` (``n`` is None).
    """
    order = np.argsort(labels)
    x = np.log2(np.asarray(labels, float)[order])
    y = np.asarray(scores, float)[order]
    if y[0] >= target:
        return float(2 ** x[0]), "at most"
    for i in range(1, len(x)):
        if y[i] >= target:
            t = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(2 ** (x[i - 1] + t * (x[i] - x[i - 1]))), "interpolated"
    return None, "not reached"


def monotone(labels: Sequence[float], scores: Sequence[float]) -> np.ndarray:
    """The non-decreasing curve closest to ``scores`` (least squares; pool-adjacent-violators, via
    scipy) at ``labels`` in increasing order: more labels never score less, so a dip between two
    label counts is read as noise, not as a curve the savings could be read off."""
    from scipy.optimize import isotonic_regression  # heavy: imported when used

    y = np.asarray(scores, float)[np.argsort(labels)]
    return isotonic_regression(y, increasing=True).x


def savings_interval(labels: Sequence[float], method: np.ndarray, baseline: np.ndarray, n_b: float,
                     level: float = 0.95) -> dict:
    """Labels a method needs to reach the baseline's score at ``n_b``, and the share saved, with
    percentile intervals.

    ``method`` / ``baseline``: scores at ``labels`` (increasing), observed in row 0 and bootstrap
    replicates in the others (rows with NaN are left out). Each row's curves are made monotone
    (:func:`monotone`) before reading them. A replicate that already reaches the target at the
    smallest label count only bounds the need (``<=`` the smallest count; "below" in the result),
    one that never reaches it counts as infinitely many labels ("above"), so that interval ends
    outside the measured range are marked, not extrapolated."""
    labels = np.asarray(labels, float)
    col = int(np.flatnonzero(labels == n_b)[0])
    need = []
    for m, b in zip(np.asarray(method, float), np.asarray(baseline, float)):
        if np.isnan(m).any() or np.isnan(b).any():
            continue
        n, how = labels_to_reach(labels, monotone(labels, m), monotone(labels, b)[col])
        need.append((np.inf if n is None else n, how))
    (n0, how0), rest = need[0], need[1:]
    values = np.array([n for n, _ in rest]) if rest else np.array([n0])
    # order statistics (no interpolation), so an infinite "never reached" stays an open end
    lo = float(np.percentile(values, 50 * (1 - level), method="lower"))
    hi = float(np.percentile(values, 50 * (1 + level), method="higher"))
    saved = lambda n: None if not np.isfinite(n) else 100.0 * (1.0 - n / n_b)  # noqa: E731
    return {"labels_needed": None if not np.isfinite(n0) else n0, "how": how0,
            "labels_low": lo, "labels_high": None if not np.isfinite(hi) else hi,
            "low_below": lo <= labels[0] and any(h == "at most" for _, h in rest),
            "high_above": not np.isfinite(hi),
            "saved_pct": saved(n0), "saved_low": saved(hi), "saved_high": saved(lo)}


def fmt_pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}%"


def stratified_bootstrap_ci(a: dict[str, Sequence[float]], b: dict[str, Sequence[float]],
                            n_boot: int = 5000, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """Difference of means ``a - b`` of independent runs, averaged over strata, with its CI.

    ``a`` and ``b`` map a stratum (a data split) to the scores of independent runs (one per seed);
    runs are resampled with replacement within each stratum and method, the stratum means are
    averaged, and the percentile interval of the difference is returned with the observed one.
    Strata are kept (not resampled): the splits are fixed, the seeds are the variation.
    """
    strata = sorted(set(a) & set(b))
    if not strata:
        raise ValueError("no stratum has runs of both methods")
    rng = np.random.default_rng(seed)

    def boot(values: Sequence[float]) -> np.ndarray:
        v = np.asarray(values, float)
        return v[rng.integers(0, v.size, (n_boot, v.size))].mean(axis=1)

    diff = np.mean([boot(a[s]) - boot(b[s]) for s in strata], axis=0)
    observed = float(np.mean([np.mean(a[s]) - np.mean(b[s]) for s in strata]))
    lo, hi = np.percentile(diff, [50 * (1 - level), 50 * (1 + level)])
    return observed, float(lo), float(hi)


def verdict(low: float, high: float) -> str:
    """In words: the interval of a difference above 0, below 0, or containing it."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not resolved at this study size"
