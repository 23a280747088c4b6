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
follows Owen (2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1), which is mildly conservative.
Drawing one level alone (``levels=("subset",)``) measures the variance that level alone puts on
a mean or a difference: the variance components of the report.
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


def by_level(runs: Sequence[Run], n_boot: int = 1000, seed: int = 0) -> dict[str, Replicates]:
    """Replicates drawing one level at a time, for :func:`components`."""
    return {level: resample(runs, n_boot, seed, (level,)) for level in LEVELS}


def components(level_reps: dict[str, Replicates], runs: Sequence[Run], a: tuple[str, str],
               b: tuple[str, str]) -> dict[str, float | None]:
    """The variance each level alone puts on the difference ``a - b`` of means (the bootstrap
    drawing that level only). None where the level has a single member (not measured)."""
    counts = _level_counts(runs, a, b)
    return {level: float(np.nanvar(reps.diff(a, b)[1])) if counts[level] >= 2 else None
            for level, reps in level_reps.items()}


def _level_counts(runs: Sequence[Run], a: tuple[str, str], b: tuple[str, str]) -> dict[str, int]:
    mine = [r for r in runs if (r.method, r.fraction) in (a, b)]
    per_group: dict[tuple, int] = defaultdict(int)
    for r in mine:
        per_group[(r.method, r.fraction, r.subset, r.pretrain)] += 1
    return {"pretrain": max(len({r.pretrain for r in mine if r.method == m}) for m in (a[0], b[0])),
            "subset": len({r.subset for r in mine}),
            "finetune": max(per_group.values(), default=0),
            "image": len(mine[0].scores) if mine else 0}


def interaction_variance(scores: np.ndarray) -> float | None:
    """The run x image interaction of a (runs, images) score matrix: the residual mean square of
    the two-way layout (what is left after each run's and each image's mean). None with one run."""
    scores = np.asarray(scores, float)
    runs, images = scores.shape
    if runs < 2 or images < 2:
        return None
    resid = scores - scores.mean(1, keepdims=True) - scores.mean(0, keepdims=True) + scores.mean()
    return float((resid ** 2).sum() / ((runs - 1) * (images - 1)))


def runs_to_resolve(diff: float, comps: dict[str, float | None], runs_now: int, interaction: float = 0.0,
                    z: float = 1.96, power_z: float = 0.84) -> tuple[float | None, str]:
    """Runs per method needed to resolve a true difference of the observed size with 80 % power.

    With k times the runs, the run-level variance (pretraining, subsets, seeds) and the part of the
    images' variance that is run x image interaction (``interaction``: its share of ``comps
    ["image"]``) shrink as 1/k, the rest of the images' does not, so k solves
    ``v_fixed + v_runs / k = (|diff| / (z + power_z))^2``. Returns ``(runs, how)``: how is
    "estimate", or why there is none."""
    interaction = min(interaction, comps.get("image") or 0.0)
    v_fixed = (comps.get("image") or 0.0) - interaction
    v_runs = sum(v for k, v in comps.items() if k != "image" and v) + interaction
    goal = (abs(diff) / (z + power_z)) ** 2
    if diff == 0 or goal <= v_fixed:
        return None, "not by more runs alone: the test images' spread is larger (a larger test set would)"
    if v_runs == 0:
        return None, "no run-level spread measured (one run per level)"
    return float(max(runs_now, np.ceil(runs_now * v_runs / (goal - v_fixed)))), "estimate"
