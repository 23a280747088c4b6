"""Simulated studies with a known truth, fed through the report's own inference, to measure how
often it is right: the false-positive rate of "resolved" under no difference, the coverage of the
true difference and the power (``bench/calibration.py`` prints the table; docs/method.md has it).

A simulated study has a baseline and one pretrained method at one label fraction with the design
of a real one: ``subsets`` label subsets (paired), ``pretrains`` pretraining runs of the method,
``seeds`` fine-tuning seeds per (subset, pretraining run), ``images`` test images (paired). Scores
are the sum of random effects whose standard deviations a *pattern* sets (bootstrap.py's layout):

    score = 0.7 + image + image x method + subset + subset x method + pretraining
            + pretraining x subset + seed + run x image (+ delta for the method)

The true difference is ``delta`` over the populations of subsets, pretraining runs, seeds and
images. With one subset (the whole pool labeled) no other labeled set exists, so that subset's
subset x method effect is part of what is estimated (inference.py): such a study draws it the
same for both methods, and the truth is ``delta`` for the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from endopat.report.across import across
from endopat.report.bootstrap import Run, interval, resample
from endopat.report.compare import Comparison

DESIGNS = {"2x2x2": (2, 2, 2, 40), "4x2x2": (4, 2, 2, 40), "1x2x2 (full fraction)": (1, 2, 2, 40),
           "4x4x2": (4, 4, 2, 40)}

# standard deviations of each random effect; the dominant one 0.05, the others small
_SMALL, _BIG = 0.006, 0.05
_BASE = {"image": 0.15, "image_method": 0.02, "subset": 0.05, "subset_method": _SMALL, "pretrain": _SMALL,
         "pretrain_subset": _SMALL, "seed": _SMALL, "residual": 0.04}
PATTERNS = {
    "mixed": dict(_BASE, subset_method=0.02, pretrain=0.02, pretrain_subset=0.01, seed=0.02),
    "subset x method": dict(_BASE, subset_method=_BIG),
    "pretraining runs": dict(_BASE, pretrain=_BIG),
    "fine-tuning seeds": dict(_BASE, seed=_BIG),
}

Inference = Callable[[list[Run]], tuple[float, float]]


@dataclass
class Row:
    design: str
    pattern: str
    false_positive: float
    coverage: float
    power: float
    studies: int

    def line(self) -> str:
        return (f"{self.design}, {self.pattern}: false-positive rate {self.false_positive:.3f}, "
                f"coverage {self.coverage:.3f}, power {self.power:.2f}")


def study(design: tuple[int, int, int, int], sd: dict[str, float], delta: float,
          rng: np.random.Generator) -> tuple[list[Run], float]:
    """One simulated study's runs ('baseline' and 'PAT' at fraction '1/4') and its true difference."""
    return _simulate(design, sd, [("baseline", False, 0.0), ("PAT", True, delta)], rng), delta


def two_protocols(design: tuple[int, int, int, int], sd: dict[str, float], delta: float,
                  rng: np.random.Generator) -> tuple[list[Run], float]:
    """One simulated pair of studies of the same split under two protocols (methods 'A baseline',
    'A PAT', 'B baseline', 'B PAT'): the label subsets and test images are the same in both, each
    of the four rows has its own effects, protocol B lowers every score by 0.3, and PAT's gain is
    ``delta`` larger under A: the truth of (A PAT - A baseline) - (B PAT - B baseline)."""
    rows = [("A baseline", False, 0.0), ("A PAT", True, delta), ("B baseline", False, -0.3), ("B PAT", True, -0.3)]
    return _simulate(design, sd, rows, rng), delta


def _simulate(design: tuple[int, int, int, int], sd: dict[str, float], rows: list[tuple[str, bool, float]],
              rng: np.random.Generator) -> list[Run]:
    """Runs of ``rows`` (name, pretrained, shift) on shared label subsets and test images: each row
    its own image x row and subset x row effects (shared by all rows when the one subset is the whole
    pool), each pretrained row its own pretraining runs and pretraining x subset effects."""
    subsets, pretrains, seeds, images = design
    image = rng.normal(0, sd["image"], images)
    sub = rng.normal(0, sd["subset"], subsets)
    runs = []
    shared_sm = rng.normal(0, sd["subset_method"], subsets)
    for method, pretrained, shift in rows:
        n_pre = pretrains if pretrained else 1
        im = rng.normal(0, sd["image_method"], images)
        sm = shared_sm if subsets == 1 else rng.normal(0, sd["subset_method"], subsets)
        pre = rng.normal(0, sd["pretrain"], n_pre) if pretrained else np.zeros(1)
        ps = rng.normal(0, sd["pretrain_subset"], (subsets, n_pre)) if pretrained else np.zeros((subsets, 1))
        for s in range(subsets):
            for p in range(n_pre):
                for r in range(seeds):
                    level = 0.7 + shift + sub[s] + sm[s] + pre[p] + ps[s, p] + rng.normal(0, sd["seed"])
                    scores = level + image + im + rng.normal(0, sd["residual"], images)
                    runs.append(Run(method, "1/4", s, p, r, scores))
    return runs


def calibrate(inference: Inference, design: str, pattern: str, studies: int = 500, delta: float = 0.04,
              seed: int = 0, level: float = 0.95, simulate=study) -> Row:
    """``studies`` null and ``studies`` non-null studies of one design and variance pattern
    (``simulate``: :func:`study`, or :func:`two_protocols`) through ``inference`` (runs -> the
    interval of the difference the simulation's truth is about)."""
    rng = np.random.default_rng(seed)
    fp = cover = hits = 0
    for _ in range(studies):
        runs, truth = simulate(DESIGNS[design], PATTERNS[pattern], 0.0, rng)
        lo, hi = inference(runs)
        fp += lo > 0 or hi < 0
        runs, truth = simulate(DESIGNS[design], PATTERNS[pattern], delta, rng)
        lo, hi = inference(runs)
        cover += lo <= truth <= hi
        hits += lo > 0
    return Row(design, pattern, fp / studies, cover / studies, hits / studies, studies)


def report_inference(runs: list[Run]) -> tuple[float, float]:
    """The report's interval of PAT - baseline (the code path of report.compare)."""
    row = next(r for r in Comparison(_cells(runs), "baseline").differences() if r["method"] == "PAT")
    return row["run_ci_low"], row["run_ci_high"]


def _cells(runs: list[Run], prefix: str = "") -> list[dict]:
    """Runs as a study's finished cells (those whose method starts with ``prefix``, without it)."""
    return [{"method": r.method[len(prefix):], "fraction": r.fraction, "subset": r.subset, "pretrain_rep": r.pretrain,
             "repeat": r.finetune, "labels": 10,
             "rows": [{"id": i, "dice": float(v), "iou": float(v)} for i, v in enumerate(r.scores)]}
            for r in runs if r.method.startswith(prefix)]


def across_inference(runs: list[Run]) -> tuple[float, float]:
    """The interval of (A PAT - A baseline) - (B PAT - B baseline) on the code path of two studies
    read side by side (:func:`endopat.report.across.across`)."""
    row = next(r for r in across(_cells(runs, "A "), _cells(runs, "B ")) if r["method"] == "PAT")
    return row["ci_low"], row["ci_high"]


def bootstrap_inference(n_boot: int = 1000) -> Inference:
    """The percentile interval of the hierarchical bootstrap alone (the report's inference before
    this module), for the comparison table."""
    def infer(runs: list[Run]) -> tuple[float, float]:
        return interval(resample(runs, n_boot).diff(("PAT", "1/4"), ("baseline", "1/4"))[1])

    return infer
