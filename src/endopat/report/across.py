"""Two studies of the same split side by side: each method's difference from the baseline in
study A and in study B, and the difference between those differences, with calibrated intervals.

The question it answers: does a change of protocol (the paper's vs endopat's recipe: L or Lab
input, flips, transductive or inductive pretraining, validation subsets) change what a method
does, not only the scores of every row? The two studies must share their label subsets and test
images (the same labeled folder, split, seed, fractions and subsets), so that a subset's or an
image's effect cancels within each study and is paired between them. The interval of
``(M_A - B_A) - (M_B - B_B)`` comes from :func:`endopat.report.inference.contrast`: the label
subsets pair all four rows, each method's pretraining runs are its own in each study (two pieces,
one per study), and the images pair everything; its degrees of freedom are the fewest of any
run-level piece. ``bench/calibration.py --across`` checks its level by simulation.
"""

from __future__ import annotations

from collections import defaultdict

from endopat.data.splits import parse_fraction
from endopat.report import inference, stats
from endopat.report.compare import runs_of

SEP = "\x00"  # joins a study's tag and a method's name while both studies' runs share one image list


def across(cells_a: list[dict], cells_b: list[dict], baseline_a: str = "baseline", baseline_b: str = "baseline"
           ) -> list[dict]:
    """Rows per label fraction both baselines ran: the baselines' difference (A - B), then, per
    method both studies ran there, its difference from the baseline in A and in B and the
    difference of those differences, each with its calibrated 95 % interval and degrees of freedom."""
    tagged = ([dict(c, method=f"a{SEP}{c['method']}") for c in cells_a]
              + [dict(c, method=f"b{SEP}{c['method']}") for c in cells_b])
    rows_of: dict[tuple[str, str, str], list] = defaultdict(list)  # (study, method, fraction) -> runs
    for run in runs_of(tagged):  # scored on the test images every cell of both studies has
        study, method = run.method.split(SEP, 1)
        rows_of[(study, method, run.fraction)].append(run)
    labels = {(c["method"], c["fraction"]): c.get("labels") for c in cells_a}
    fractions = sorted({f for s, m, f in rows_of if s == "a" and m == baseline_a and ("b", baseline_b, f) in rows_of},
                       key=parse_fraction, reverse=True)
    out = []
    for f in fractions:
        base_a, base_b = rows_of[("a", baseline_a, f)], rows_of[("b", baseline_b, f)]
        out.append(_row("baseline (A - B)", f, labels.get((baseline_a, f)), base_a, base_b,
                        inference.contrast([(1.0, base_a), (-1.0, base_b)]), None, None))
        methods = [m for s, m, ff in rows_of if s == "a" and ff == f and m != baseline_a and ("b", m, f) in rows_of]
        for m in dict.fromkeys(methods):
            ma, mb = rows_of[("a", m, f)], rows_of[("b", m, f)]
            out.append(_row(m, f, labels.get((m, f)), ma, mb,
                            inference.contrast([(1.0, ma), (-1.0, base_a), (-1.0, mb), (1.0, base_b)]),
                            inference.contrast([(1.0, ma), (-1.0, base_a)]),
                            inference.contrast([(1.0, mb), (-1.0, base_b)])))
    return out


def _row(method: str, fraction: str, labels, runs_a: list, runs_b: list, est: inference.Estimate,
         in_a: inference.Estimate | None, in_b: inference.Estimate | None) -> dict:
    lo, hi = est.interval()
    what = "the score" if in_a is None else "the difference from the baseline"
    verdict = ({"better": f"{what} is higher in A", "worse": f"{what} is lower in A"}.get(stats.verdict(lo, hi),
                                                                                         "not resolved at this study size")
               if not est.unmeasured else "not resolved: " + ", ".join(est.unmeasured) + " not measured")
    row = {"method": method, "fraction": fraction, "labels": labels, "runs_a": len(runs_a), "runs_b": len(runs_b),
           "diff": est.diff, "ci_low": lo, "ci_high": hi, "df": est.df, "verdict": verdict}
    for name, e in (("a", in_a), ("b", in_b)):
        if e is not None:
            e_lo, e_hi = e.interval()
            row |= {f"effect_{name}": e.diff, f"effect_{name}_low": e_lo, f"effect_{name}_high": e_hi,
                    f"effect_{name}_df": e.df}
    return row
