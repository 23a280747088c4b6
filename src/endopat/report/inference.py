"""The calibrated interval of a difference between two rows of a study, and the runs that would
resolve it.

A study's runs are few at every level (2 label subsets, 2 pretraining runs, 2 fine-tuning seeds
is typical), and a bootstrap over 2 units can only draw 3 distinct resamples: it underestimates
the variance by about (n - 1) / n and its percentile interval is too narrow (bench/calibration.py
measured up to 37 % false positives at nominal 5 %). Here the variance of the mean difference is
estimated by the method of moments of the study's random-effects layout, each piece with its own
degrees of freedom, and the interval is Student's t with the fewest degrees of freedom of any
run-level piece, so a level with 2 units gives the interval the 1 degree of freedom it has
(:func:`degrees_of_freedom` says why not Satterthwaite's).

The layout, for method M against method B at one label fraction (image-averaged run means Y):

    Y[X, s, p, r] = mu_X + a_s + u[X, s] + b[X, p] + c[X, s, p] + e[X, s, p, r]

- ``a_s``: the label subset's effect, shared by both methods (it cancels: subsets are paired);
- ``u``: subset x method (how much a method's gain depends on which frames were labeled);
- ``b``: the pretraining run (each pretrained method's own runs; the baseline has none);
- ``c``: pretraining run x subset; ``e``: the fine-tuning seed;
- and, across the test images, the image x method effect, estimated from the per-image
  differences of run-averaged scores.

Pieces of the variance of ``mean(Y_M) - mean(Y_B)`` (a conservative estimator: each piece is a
plain variance of means, none is a difference of mean squares, so none can come out negative;
the pretraining x subset and seed terms are counted in both the subset and the pretraining
pieces, which makes the interval wider than it must be where they dominate):

- **subsets** (two or more shared subsets): the variance of the per-subset differences / S, with
  S - 1 degrees of freedom; it holds u, c and e of both sides;
- **pretraining** (a side with two or more pretraining runs): the variance of that side's
  pretraining-run means / P, with P - 1 degrees of freedom; b appears nowhere else, since it is
  the same in every subset;
- **seeds** (a side with one pretraining run and one subset): its seeds' variance / seeds;
- **images**: the variance of the per-image differences / images, images - 1 degrees of freedom.

With one subset (the full fraction: the whole pool labeled) the subset x method effect is part of
what is estimated, since no other labeled set exists. A side whose run-to-run spread cannot be
measured at all (one run, one subset) is named in ``unmeasured``, and nothing is resolved.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.special import ndtri, stdtrit

from endopat.report.bootstrap import Run

POWER_Z = 0.84  # 80 % power
MAX_REPEATS = 8  # the most pretraining runs and fine-tuning seeds "runs to resolve" proposes


@dataclass
class Piece:
    """One estimated part of the variance of the difference: ``value`` with ``df`` degrees of freedom."""

    level: str
    value: float
    df: float


@dataclass
class Estimate:
    """A difference of means with its calibrated variance."""

    diff: float
    pieces: list[Piece]
    unmeasured: list[str] = field(default_factory=list)
    # what the planner needs: per side, (subsets, pretraining runs, seeds) and the components
    design: dict = field(default_factory=dict)

    @property
    def variance(self) -> float:
        return float(sum(p.value for p in self.pieces))

    @property
    def df(self) -> float:
        return degrees_of_freedom(self.pieces)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        v = self.variance
        if v <= 0:
            return self.diff, self.diff
        half = t_quantile(level, self.df) * np.sqrt(v)
        return self.diff - half, self.diff + half

    def shares(self) -> dict[str, float | None]:
        """Each level's variance (None where it has one member and is not measured)."""
        out: dict[str, float | None] = {"pretrain": None, "subset": None, "finetune": None, "image": None}
        for p in self.pieces:
            out[p.level] = (out[p.level] or 0.0) + p.value
        return out


def degrees_of_freedom(pieces: Sequence[Piece]) -> float:
    """The interval's degrees of freedom: the fewest of any run-level piece (label subsets,
    pretraining runs, seeds); the images' where there is none. Satterthwaite's approximation was
    tried first and is too liberal here: a level with 2 units has 1 degree of freedom, its
    estimate is often near 0 by chance, and then the approximation hands the sum the images' 39
    degrees of freedom (bench/calibration.py: 10-12 % false positives at nominal 5 % where
    pretraining runs dominate); docs/method.md has both tables."""
    run_level = [p.df for p in pieces if p.level != "image"]
    if run_level:
        return float(min(run_level))
    return float(min((p.df for p in pieces), default=float("inf")))


def t_quantile(level: float, df: float) -> float:
    """Student's t quantile at ``0.5 + level / 2`` (the normal's for infinite df)."""
    q = 0.5 + level / 2
    return float(stdtrit(df, q)) if np.isfinite(df) else float(ndtri(q))


class _Side:
    """One method's runs at one fraction: its (subset, pretraining run) cells of run means."""

    def __init__(self, runs: Sequence[Run]):
        cells: dict[tuple[int, int], list[float]] = defaultdict(list)
        for r in runs:
            cells[(r.subset, r.pretrain)].append(float(r.scores.mean()))
        self.cells = {k: np.array(v) for k, v in cells.items()}
        self.mean = float(np.mean([m for v in self.cells.values() for m in v]))
        self.subsets = sorted({s for s, _ in self.cells})
        self.pretrains = sorted({p for _, p in self.cells})
        self.seeds = float(np.mean([len(v) for v in self.cells.values()]))
        self.seed_df = sum(len(v) - 1 for v in self.cells.values())
        self.seed_var = (sum(float(((v - v.mean()) ** 2).sum()) for v in self.cells.values()) / self.seed_df
                         if self.seed_df else None)

    def subset_mean(self, s: int) -> float:
        return float(np.mean([v.mean() for (ss, _), v in self.cells.items() if ss == s]))

    def pretrain_means(self) -> np.ndarray:
        return np.array([np.mean([v.mean() for (_, p), v in self.cells.items() if p == q]) for q in self.pretrains])

    def within(self) -> float:
        """Pretraining run x subset plus seed variance of one cell's mean (for the planner): the
        two-way residual where the table is complete, else the seeds' variance / seeds."""
        s, p = len(self.subsets), len(self.pretrains)
        if s >= 2 and p >= 2 and len(self.cells) == s * p:
            z = np.array([[self.cells[(a, b)].mean() for b in self.pretrains] for a in self.subsets])
            resid = z - z.mean(1, keepdims=True) - z.mean(0, keepdims=True) + z.mean()
            return float((resid ** 2).sum()) / ((s - 1) * (p - 1))
        return (self.seed_var or 0.0) / self.seeds


def estimate(runs_a: Sequence[Run], runs_b: Sequence[Run]) -> Estimate:
    """The difference of the mean scores of two rows (``a - b``, each the mean of its runs) with
    its calibrated variance (the module's layout)."""
    if not runs_a or not runs_b:
        raise ValueError("both sides need runs")
    return contrast([(1.0, runs_a), (-1.0, runs_b)])


def contrast(terms: Sequence[tuple[float, Sequence[Run]]]) -> Estimate:
    """A signed sum of rows' mean scores, ``sum_k w_k mean(row_k)``, with its calibrated variance:
    the difference of two rows (weights 1, -1), or the difference of one difference under two
    protocols, ``(M_A - B_A) - (M_B - B_B)`` (1, -1, -1, 1), when both studies share their label
    subsets and test images. The subset piece pairs the rows by their shared label subsets; each
    row with two or more pretraining runs adds its own pretraining piece (runs of different rows
    are different runs); the images' piece is the variance of the per-image signed sums."""
    if not terms or any(not runs for _, runs in terms):
        raise ValueError("every row needs runs")
    sides = [(w, _Side(runs)) for w, runs in terms]
    pieces, unmeasured, infos = [], [], []
    shared = sorted(set.intersection(*(set(side.subsets) for _, side in sides)))
    d = np.array([sum(w * side.subset_mean(s) for w, side in sides) for s in shared])
    if len(d) >= 2:
        v = float(d.var(ddof=1)) / len(d)
        pieces.append(Piece("subset", v, len(d) - 1))
    for w, side in sides:
        info = {"pretrains": len(side.pretrains), "seeds": side.seeds, "seed_var": side.seed_var or 0.0,
                "within": side.within(), "pretrain_var": 0.0, "weight": w}
        if len(side.pretrains) >= 2:
            col = side.pretrain_means()
            v = w * w * float(col.var(ddof=1)) / len(col)
            pieces.append(Piece("pretrain", v, len(col) - 1))
            info["pretrain_var"] = max(0.0, float(col.var(ddof=1)) - info["within"] / len(side.subsets))
        elif len(d) < 2 and side.seed_var is not None:
            v = w * w * side.seed_var / (side.seeds * len(side.cells))
            pieces.append(Piece("finetune", v, side.seed_df))
        elif len(d) < 2:
            unmeasured.append("run-to-run spread (one run)")
        infos.append(info)
    per_image = sum(w * np.mean([r.scores for r in runs], axis=0) for w, runs in terms)
    image_var = float(per_image.var(ddof=1)) / per_image.size if per_image.size >= 2 else 0.0
    if image_var > 0:
        pieces.append(Piece("image", image_var, per_image.size - 1))
    subset_var = (max(0.0, float(d.var(ddof=1)) - sum(i["weight"] ** 2 * i["within"] / i["pretrains"] for i in infos))
                  if len(d) >= 2 else 0.0)
    design = {"subsets": len(shared), "sides": infos, "subset_var": subset_var, "image_var": image_var,
              "image_df": max(1, per_image.size - 1)}
    return Estimate(float(sum(w * side.mean for w, side in sides)), pieces, sorted(set(unmeasured)), design)


def plan(est: Estimate, max_subsets: int | None, level: float = 0.95) -> tuple[tuple[int, int, int] | None, str]:
    """The cheapest design (label subsets, pretraining runs, fine-tuning seeds per method) whose
    interval would exclude 0 with 80 % power if the true difference were the observed one, from
    the components ``est`` measured. Subsets never exceed ``max_subsets`` (the disjoint subsets
    the labeled pool holds; None: no limit); pretraining runs and seeds stop at MAX_REPEATS.
    Returns the design and how it was found, or None and why there is none."""
    d = est.design
    if est.diff == 0:
        return None, "nothing to resolve: the difference is 0"
    goal = abs(est.diff)
    if not d.get("sides"):
        return None, "not measured"
    s_now = max(1, d["subsets"])
    s_cap = s_now if d["subsets"] < 2 else max(s_now, max_subsets or 64)
    pretrained = any(side["pretrains"] >= 2 for side in d["sides"])
    best = None
    for s in range(s_now, s_cap + 1):
        for p in range(2 if pretrained else 1, (MAX_REPEATS if pretrained else 1) + 1):
            for r in range(1, MAX_REPEATS + 1):
                pieces = _projected(d, s, p, r)
                v = sum(x.value for x in pieces)
                if v <= 0:
                    continue
                df = degrees_of_freedom(pieces)
                if goal >= (t_quantile(level, df) + POWER_Z) * np.sqrt(v):
                    cost = s * p * r
                    if best is None or cost < best[0]:
                        best = (cost, (s, p, r))
    if best is not None:
        return best[1], "estimate"
    if d["image_var"] >= (goal / (t_quantile(level, float("inf")) + POWER_Z)) ** 2:
        return None, "not by more runs alone: the test images' spread is larger (a larger test set would)"
    if d["subsets"] >= 2 and max_subsets is not None:
        return None, (f"not within the {max_subsets} disjoint label subsets the labeled pool holds and "
                      f"{MAX_REPEATS} pretraining runs and seeds: nothing affordable would")
    return None, f"not within {MAX_REPEATS} pretraining runs and seeds"


def _projected(d: dict, s: int, p: int, r: int) -> list[Piece]:
    """The pieces :func:`estimate` would expect for a design of ``s`` subsets, ``p`` pretraining
    runs (for a side that has them) and ``r`` seeds, from the measured components."""
    out = [Piece("image", d["image_var"], d["image_df"])]
    cells = []
    for side in d["sides"]:
        pp = p if side["pretrains"] >= 2 else 1
        cross = max(0.0, side["within"] - side["seed_var"] / side["seeds"])
        within = cross + side["seed_var"] / r  # one cell's mean
        cells.append((pp, within))
        if pp >= 2:
            v = side["pretrain_var"] / pp + within / (s * pp)
            out.append(Piece("pretrain", v, pp - 1))
        elif s < 2 and within > 0:
            v = within / (s * pp)
            out.append(Piece("finetune", v, max(1, s * pp * (r - 1))))
    if s >= 2:
        v = d["subset_var"] / s + sum(w / (s * pp) for pp, w in cells)
        out.append(Piece("subset", v, s - 1))
    return [x for x in out if x.value > 0]
