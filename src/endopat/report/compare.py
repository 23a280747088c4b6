"""Each method against the baseline: differences with intervals over every source of variation,
the variance components behind them, the runs that would resolve them, and label savings.

A difference's interval, its variance shares and the runs that would resolve it come from the
calibrated inference (:mod:`endopat.report.inference`: method-of-moments variance, Student's t
with Satterthwaite's degrees of freedom). Label savings read whole curves, so they need
replicates: the hierarchical bootstrap (:mod:`endopat.report.bootstrap`) draws the baseline's
curve, and each method's curve is the baseline's plus its difference, whose replicates are
rescaled to the calibrated interval (:meth:`Comparison.calibrated_draws`); a saving's interval is
therefore as wide as the difference's.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from functools import cached_property

import numpy as np

from endopat.data.splits import parse_fraction
from endopat.report import bootstrap, inference, stats

N_BOOT = 2000


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

    def __init__(self, cells: list[dict], baseline: str, seed: int = 0, pool: int | None = None):
        """``pool``: the labeled training images the label subsets are drawn from (how many
        disjoint subsets "runs to resolve" may ask for); None: not limited."""
        self.cells, self.baseline, self.seed, self.pool = cells, baseline, seed, pool
        self.runs = runs_of(cells)
        self.groups = by_method_fraction(cells)
        self._runs_by = defaultdict(list)
        for r in self.runs:
            self._runs_by[(r.method, r.fraction)].append(r)

    @cached_property
    def reps(self) -> bootstrap.Replicates | None:
        """The hierarchical bootstrap's replicates (for the savings' curves)."""
        return bootstrap.resample(self.runs, N_BOOT, self.seed) if self.runs else None

    def estimate(self, a: tuple[str, str], b: tuple[str, str]) -> inference.Estimate:
        return inference.estimate(self._runs_by[a], self._runs_by[b])

    def against(self, baseline: str) -> "Comparison":
        """The same replicates read against another method (no second bootstrap)."""
        other = copy.copy(self)
        other.baseline = baseline
        return other

    def differences(self) -> list[dict]:
        """Per method and fraction: the mean DSC difference to the baseline with its calibrated
        interval and verdict, the share of its variance from each level, the runs that would
        resolve it; secondary, the per-image paired interval and Wilcoxon test of run-averaged
        scores (which ignore the variation between runs)."""
        out = []
        for (method, fraction), cs in self.groups.items():
            base = (self.baseline, fraction)
            if method == self.baseline or base not in self.groups:
                continue
            est = self.estimate((method, fraction), base)
            lo, hi = est.interval()
            comps = est.shares()
            total = sum(v for v in comps.values() if v)
            resolved = (lo > 0 or hi < 0) and not est.unmeasured
            a, b = _per_image_mean(cs), _per_image_mean(self.groups[base])
            ids = sorted(set(a) & set(b))
            va, vb = [a[i] for i in ids], [b[i] for i in ids]
            _, img_lo, img_hi = stats.paired_bootstrap_ci(va, vb)
            out.append({"method": method, "fraction": fraction, "runs": len(cs),
                        "baseline_runs": len(self.groups[base]),
                        "pretrain_runs": len({c.get("pretrain_rep", 0) for c in cs}), "n_images": len(ids),
                        "dice_diff": est.diff, "run_ci_low": lo, "run_ci_high": hi, "df": est.df,
                        "verdict": (stats.verdict(lo, hi) if not est.unmeasured else
                                    "not resolved: " + ", ".join(est.unmeasured) + " not measured"),
                        **{f"var_{k}_pct": None if v is None or not total else 100 * v / total
                           for k, v in comps.items()},
                        **self._to_resolve(est, cs, resolved),
                        "ci_low": img_lo, "ci_high": img_hi, "wilcoxon_p": stats.wilcoxon_p(va, vb)})
        return out

    def _to_resolve(self, est: inference.Estimate, cs: list[dict], resolved: bool) -> dict:
        """"Runs to resolve": the runs per method of the cheapest design that would, and that design
        in words; or why none would (never more disjoint label subsets than the pool holds)."""
        if resolved:
            return {"runs_to_resolve": None, "runs_to_resolve_note": ""}
        if est.variance == 0 and est.diff == 0:  # the same scores on every image (e.g. a first labeling round)
            return {"runs_to_resolve": None, "runs_to_resolve_note": "nothing to resolve: the runs score alike on every image"}
        labels = max(1, int(cs[0].get("labels", 1)))
        cap = self.pool // labels if self.pool else None
        design, how = inference.plan(est, cap)
        if design is None:
            return {"runs_to_resolve": None, "runs_to_resolve_note": how}
        s, p, r = design
        words = f"{s} label subsets x {p} pretraining runs x {r} seeds" if p > 1 else f"{s} label subsets x {r} seeds"
        return {"runs_to_resolve": float(s * p * r), "runs_to_resolve_note": words}

    def calibrated_draws(self, method: str, fraction: str) -> np.ndarray:
        """Replicates of ``method``'s mean at ``fraction``: the baseline's bootstrap replicates plus
        the difference's, rescaled about the observed difference so that their percentile interval
        is the calibrated one (:mod:`endopat.report.inference`)."""
        a, b = (method, fraction), (self.baseline, fraction)
        diff, draws = self.reps.diff(a, b)
        lo, hi = self.estimate(a, b).interval()
        d = draws[~np.isnan(draws)]
        b_lo, b_hi = np.percentile(d, [2.5, 97.5]) if d.size else (diff, diff)
        scale = (hi - lo) / (b_hi - b_lo) if b_hi > b_lo else 0.0
        centre = np.nanmedian(draws) if d.size else diff
        return self.reps.draws[b] + diff + scale * (draws - centre)

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
        """A method's mean DSC at ``fractions``: row 0 observed, then the replicates (the
        baseline's from the bootstrap, another method's calibrated: :meth:`calibrated_draws`)."""
        cols = [np.concatenate([[self.reps.observed[(method, f)]],
                                self.reps.draws[(method, f)] if method == self.baseline
                                else self.calibrated_draws(method, f)]) for f in fractions]
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
