"""The hierarchical bootstrap of a study: every source of variation, resampled at its own level.

A study's runs are nested and crossed: a method's pretraining runs (``pretrain_seeds``) are shared
by all its cells; the label subsets are the same images for every method; each (subset,
pretraining run) is fine-tuned ``finetune_seeds`` times; every run is tested on the same test
images. One bootstrap replicate draws, with replacement and in this order,

1. each method's **pretraining runs** (once per method, shared by its fractions),
2. the **label subsets** of each fraction (shared by the methods: paired),
3. the **fine-tuning seeds** within each drawn (subset, pretraining run),
4. the **test images** (once, shared by every method and fraction: paired),

and takes each method's mean score per fraction over what was drawn. Resampling every level with
replacement is the hierarchical bootstrap of Davison & Hinkley (1997, sec. 3.8) and Saravanan
et al. (2020, "Application of the hierarchical bootstrap to multi-level data in neuroscience",
NBDT 3); drawing the crossed factors (pretraining runs x subsets, runs x images) independently
follows Owen (2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1).

With 2 units at a level it can draw only 3 distinct resamples and its percentile interval is too
narrow (bench/calibration.py: up to 21 % false positives at nominal 5 %), so the report's
intervals come from :mod:`endopat.report.inference`; the replicates here give the shape of the
label-savings curves, rescaled to those intervals (:meth:`endopat.report.compare.Comparison.calibrated_draws`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

LEVELS = ("pretrain", "subset", "finetune", "image")


@dataclass(frozen=True)
class Run:
    """One fine-tuning run: its method, fraction, label subset, pretraining repeat and fine-tuning
    repeat, and its scores on the test images (the same images, in the same order, for all runs)."""

    method: str
    fraction: str
    subset: int
    pretrain: int
    finetune: int
    scores: np.ndarray = field(compare=False)


@dataclass
class Replicates:
    """Observed means and ``n_boot`` bootstrap replicates of them, per (method, fraction)."""

    observed: dict[tuple[str, str], float]
    draws: dict[tuple[str, str], np.ndarray]

    def diff(self, a: tuple[str, str], b: tuple[str, str]) -> tuple[float, np.ndarray]:
        return self.observed[a] - self.observed[b], self.draws[a] - self.draws[b]


def resample(runs: Sequence[Run], n_boot: int = 2000, seed: int = 0,
             levels: Iterable[str] = LEVELS) -> Replicates:
    """Bootstrap replicates of every (method, fraction) mean, drawing the ``levels`` named (the
    others stay as observed) as the module describes."""
    levels = set(levels)
    if unknown := levels - set(LEVELS):
        raise ValueError(f"unknown levels {sorted(unknown)} (the levels: {', '.join(LEVELS)})")
    if not runs:
        raise ValueError("no runs")
    scores = np.stack([r.scores for r in runs]).astype(float)
    n_img = scores.shape[1]
    rng = np.random.default_rng(seed)
    img = rng.integers(0, n_img, (n_boot, n_img)) if "image" in levels else None
    # each run's mean over the drawn images, per replicate: (runs, n_boot)
    run_means = (np.stack([scores[:, i].mean(axis=1) for i in img], axis=1) if img is not None
                 else np.repeat(scores.mean(axis=1, keepdims=True), n_boot, axis=1))

    groups: dict[tuple[str, str], dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    for k, r in enumerate(runs):
        groups[(r.method, r.fraction)][(r.subset, r.pretrain)].append(k)
    methods = sorted({r.method for r in runs})
    fractions = sorted({r.fraction for r in runs})
    pre_of = {m: sorted({r.pretrain for r in runs if r.method == m}) for m in methods}
    sub_of = {f: sorted({r.subset for r in runs if r.fraction == f}) for f in fractions}

    def draw(values: list[int], level: str) -> list[int]:
        if level not in levels or len(values) < 2:
            return values
        return [values[i] for i in rng.integers(0, len(values), len(values))]

    weights = {key: np.zeros((n_boot, len(runs))) for key in groups}
    for b in range(n_boot):
        pre = {m: draw(pre_of[m], "pretrain") for m in methods}
        sub = {f: draw(sub_of[f], "subset") for f in fractions}
        for (m, f), cell_runs in groups.items():
            w = weights[(m, f)][b]
            for s in sub[f]:
                for p in pre[m]:
                    members = cell_runs.get((s, p), [])
                    for k in draw(members, "finetune") if members else []:
                        w[k] += 1
    observed, draws = {}, {}
    for key, cell_runs in groups.items():
        members = [k for ks in cell_runs.values() for k in ks]
        observed[key] = float(scores[members].mean())
        w = weights[key]
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[key] = np.where(total > 0, (w * run_means.T).sum(axis=1) / total, np.nan)
    return Replicates(observed, draws)


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates, with nothing drawn, left out)."""
    v = values[~np.isnan(values)]
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
