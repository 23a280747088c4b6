"""Statistics beyond the paper: paired bootstrap CIs, Wilcoxon tests, and label savings."""

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
    from scipy.stats import wilcoxon

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


def label_savings(curve: dict[float, float], baseline: dict[float, float]) -> dict[float, dict]:
    """For each baseline point (labels n_b, mean score s_b): the labels n a method needs to reach s_b
    on its own curve, and the share of labels saved, 100 * (1 - n / n_b)."""
    labels = sorted(curve)
    out = {}
    for n_b in sorted(baseline):
        n, how = labels_to_reach(labels, [curve[k] for k in labels], baseline[n_b])
        saved = None if n is None else 100.0 * (1.0 - n / n_b)
        out[n_b] = {"labels_needed": n, "saved_pct": saved, "how": how}
    return out


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


def cluster_bootstrap_diff(a_runs: Sequence[Sequence[float]], b_runs: Sequence[Sequence[float]],
                           n_boot: int = 4000, level: float = 0.95,
                           seed: int = 0) -> tuple[float, float, float]:
    """Difference of mean scores ``a - b`` with a CI over runs *and* test images.

    ``a_runs`` / ``b_runs``: one row per run (label subset x fine-tuning seed) of per-image scores
    on the same test images, in the same order. Each bootstrap replicate resamples, with
    replacement, the runs of each method independently (the variation between label subsets and
    seeds) and then the test images, shared by both methods (the images are paired). This is the
    two-stage cluster bootstrap (Davison & Hinkley 1997, sec. 3.8; Field & Welsh 2007): a single
    run per method leaves only image variation, which understates the uncertainty, and the report
    says so by the run count beside the interval.
    """
    a, b = np.asarray(a_runs, float), np.asarray(b_runs, float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError("runs must be rows of scores on the same test images")
    rng = np.random.default_rng(seed)
    n_img = a.shape[1]
    diffs = np.empty(n_boot)
    for k in range(n_boot):
        img = rng.integers(0, n_img, n_img)
        ra = a[rng.integers(0, len(a), len(a))][:, img]
        rb = b[rng.integers(0, len(b), len(b))][:, img]
        diffs[k] = ra.mean() - rb.mean()
    lo, hi = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def verdict(low: float, high: float) -> str:
    """In words: the interval of a difference above 0, below 0, or containing it."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not resolved at this study size"
