"""Each method against the baseline: differences with intervals over every source of variation,
the variance components behind them, the runs that would resolve them, and label savings.

Everything here reads one set of bootstrap replicates (:mod:`endopat.report.bootstrap`) of the
finished cells, so the intervals of a difference and of a saving come from the same resampling.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from endopat.data.splits import parse_fraction
from endopat.report import bootstrap, stats

N_BOOT = 2000
N_BOOT_LEVELS = 1000


def runs_of(cells: list[dict], metric: str = "dice") -> list[bootstrap.Run]:
    """The finished cells as bootstrap runs, scored on the test images every cell has."""
    if not cells:
        return []
    ids = sorted(set.intersection(*({r["id"] for r in c["rows"]} for c in cells)))
    out = []
    for c in cells:
        score = {r["id"]: r[metric] for r in c["rows"]}
        out.append(bootstrap.Run(c["method"], c["fraction"], c["subset"], c.get("pretrain_rep", 0),
                                 c.get("repeat", 0), np.array([score[i] for i in ids])))
    return out


class Comparison:
    """The replicates of one study's cells, and the tables read from them."""

    def __init__(self, cells: list[dict], baseline: str, seed: int = 0):
        self.cells, self.baseline = cells, baseline
        self.runs = runs_of(cells)
        self.reps = bootstrap.resample(self.runs, N_BOOT, seed) if self.runs else None
        self.levels = bootstrap.by_level(self.runs, N_BOOT_LEVELS, seed) if self.runs else {}
        self.groups = by_method_fraction(cells)

    def against(self, baseline: str) -> "Comparison":
        """The same replicates read against another method (no second bootstrap)."""
        other = copy.copy(self)
        other.baseline = baseline
        return other

    def differences(self) -> list[dict]:
        """Per method and fraction: the mean DSC difference to the baseline with its hierarchical
        interval and verdict, the share of its variance from each level, the runs that would
        resolve it; secondary, the per-image paired interval and Wilcoxon test of run-averaged
        scores (which ignore the variation between runs)."""
        out = []
        for (method, fraction), cs in self.groups.items():
            base = (self.baseline, fraction)
            if method == self.baseline or base not in self.groups:
                continue
            diff, draws = self.reps.diff((method, fraction), base)
            lo, hi = bootstrap.interval(draws)
            comps = bootstrap.components(self.levels, self.runs, (method, fraction), base)
            total = sum(v for v in comps.values() if v)
            resolved = lo > 0 or hi < 0
            needed, how = bootstrap.runs_to_resolve(diff, comps, len(cs), self._interaction((method, fraction), base))
            if lo == hi == diff == 0:  # the same scores on every image (e.g. a first labeling round, same frames)
                needed, how = None, "nothing to resolve: the runs score alike on every image"
            a, b = _per_image_mean(cs), _per_image_mean(self.groups[base])
            ids = sorted(set(a) & set(b))
            va, vb = [a[i] for i in ids], [b[i] for i in ids]
            _, img_lo, img_hi = stats.paired_bootstrap_ci(va, vb)
            out.append({"method": method, "fraction": fraction, "runs": len(cs),
                        "baseline_runs": len(self.groups[base]),
                        "pretrain_runs": len({c.get("pretrain_rep", 0) for c in cs}), "n_images": len(ids),
                        "dice_diff": diff, "run_ci_low": lo, "run_ci_high": hi, "verdict": stats.verdict(lo, hi),
                        **{f"var_{k}_pct": None if v is None or not total else 100 * v / total
                           for k, v in comps.items()},
                        "runs_to_resolve": None if resolved else needed,
                        "runs_to_resolve_note": "" if resolved else how,
                        "ci_low": img_lo, "ci_high": img_hi, "wilcoxon_p": stats.wilcoxon_p(va, vb)})
        return out

    def _interaction(self, a: tuple[str, str], b: tuple[str, str]) -> float:
        """The run x image interaction's part of the images' variance of the difference a - b:
        (s_a^2 / R_a + s_b^2 / R_b) / images; a side with one run borrows the other's s^2."""
        mats = [np.stack([r.scores for r in self.runs if (r.method, r.fraction) == key]) for key in (a, b)]
        s2 = [bootstrap.interaction_variance(m) for m in mats]
        known = [v for v in s2 if v is not None]
        if not known:
            return 0.0
        s2 = [known[0] if v is None else v for v in s2]
        return sum(v / len(m) for v, m in zip(s2, mats)) / mats[0].shape[1]

    def savings(self, labels: dict[tuple[str, str], int]) -> list[dict]:
        """Per method and baseline label count: the labels the method needs to match the baseline,
        and the share saved, from monotone curves over all runs, with intervals from the same
        replicates (:func:`stats.savings_interval`). Both curves are read over the label counts the
        method shares with the baseline (a method run at 10 and 5 labels only is read over 5-10;
        ``smallest`` / ``largest`` name that range); a method sharing fewer than two is left out
        (:meth:`savings_missing` says which and why)."""
        out = []
        for method in dict.fromkeys(m for m, _ in self.groups):
            fractions = self._shared(method)
            if method == self.baseline or len(fractions) < 2:
                continue
            xs = [labels[(self.baseline, f)] for f in fractions]
            order = np.argsort(xs)
            xs, fractions = [xs[i] for i in order], [fractions[i] for i in order]
            base, mine = self._curve(self.baseline, fractions), self._curve(method, fractions)
            for n_b in xs:
                r = stats.savings_interval(xs, mine, base, n_b)
                out.append({"method": method, "baseline_labels": n_b,
                            "baseline_dice": float(stats.monotone(xs, base[0])[xs.index(n_b)]),
                            "smallest": xs[0], "largest": xs[-1], **r})
        return out

    def savings_missing(self) -> list[tuple[str, str]]:
        """The methods :meth:`savings` leaves out, each with the reason."""
        out = []
        for method in dict.fromkeys(m for m, _ in self.groups):
            shared = self._shared(method)
            if method != self.baseline and len(shared) < 2:
                why = (f"measured at one label count of the baseline's ({shared[0]})" if shared else
                       "no label count in common with the baseline")
                out.append((method, why + "; a saving reads both curves over two or more"))
        return out

    def _shared(self, method: str) -> list[str]:
        """The fractions both the method and the baseline ran, smallest first."""
        return sorted((f for m, f in self.groups if m == self.baseline and (method, f) in self.groups),
                      key=parse_fraction)

    def _curve(self, method: str, fractions: list[str]) -> np.ndarray:
        """A method's mean DSC at ``fractions``: row 0 observed, then the bootstrap replicates."""
        cols = [np.concatenate([[self.reps.observed[(method, f)]], self.reps.draws[(method, f)]])
                for f in fractions]
        return np.stack(cols, axis=1)


def by_method_fraction(cells: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Finished cells grouped by (method, fraction), in the order they come."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in cells:
        groups[(c["method"], c["fraction"])].append(c)
    return groups


def _per_image_mean(cells: list[dict], metric: str = "dice") -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for c in cells:
        for r in c["rows"]:
            acc[r["id"]].append(r[metric])
    return {k: float(np.mean(v)) for k, v in acc.items()}


def fmt_labels(r: dict, smallest: float, largest: float) -> str:
    """Labels needed with its interval; ends outside the measured label counts are marked."""
    if r["labels_needed"] is None:
        point = f"not reached by {largest:g}"
    else:
        point = ("<= " if r["how"] == "at most" else "") + f"{r['labels_needed']:.1f}"
    lo = (f"<= {smallest:g}" if r["low_below"] else
          f"> {largest:g}" if not np.isfinite(r["labels_low"]) else f"{r['labels_low']:.1f}")
    hi = f"> {largest:g}" if r["high_above"] else f"{r['labels_high']:.1f}"
    return f"{point} [{lo}, {hi}]"


def fmt_saved(r: dict, smallest: float, largest: float) -> str:
    """The share saved with its interval; a bound from outside the measured counts reads as one."""
    n_b = r["baseline_labels"]
    if r["how"] == "at most":
        pct = r["saved_pct"] or 0.0
        point = (f"at least {pct:.0f}%" if pct >= 0.5
                 else "not measurable below the smallest label count")
    elif r["saved_pct"] is None:
        point = f"none (not reached by {largest:g})"
    else:
        point = stats.fmt_pct(r["saved_pct"])
    below = f"< {100 * (1 - largest / n_b):.0f}%"  # not reached by the largest count
    lo = below if r["saved_low"] is None else f"{r['saved_low']:.0f}%"
    hi = (f">= {100 * (1 - smallest / n_b):.0f}%" if r["low_below"] else
          below if r["saved_high"] is None else f"{r['saved_high']:.0f}%")
    return f"{point} [{lo}, {hi}]"
