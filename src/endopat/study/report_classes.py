"""A multi-class study's per-class results: each class read as the headline is read.

For a class, a cell's per-image scores are its ``dice_<class>`` and ``iou_<class>`` on the test images
whose truth shows the class (``gt_<class>`` > 0: where the class is absent from the truth its Dice is
0 or undefined, and which depends on each model's false positives). Those rows go through the same
code as the headline — :func:`endopat.study.report.summaries`, the calibrated
:class:`endopat.report.compare.Comparison` and its label savings — so a class's differences and
savings carry the same intervals.
"""

from __future__ import annotations

from pathlib import Path

from endopat.evaluate import class_rows
from endopat.labels import Labels
from endopat.report.compare import Comparison, fmt_labels, fmt_saved
from endopat.report.figures import plot_curves
from endopat.report.tables import write_csv
from endopat.study.report_html import class_section

CLASS_FIELDS = ["class", "method", "fraction", "labels", "runs", "n_test", "dice_mean", "iou_mean", "dice_diff",
                "run_ci_low", "run_ci_high", "verdict"]
CLASS_SAVINGS_FIELDS = ["class", "method", "baseline_labels", "baseline_dice", "labels_needed", "labels_low",
                        "labels_high", "saved_pct", "saved_low", "saved_high"]
FLOOR = 0.01  # a class's mean DSC below this on both sides: neither model segments it, nothing to compare
UNSEGMENTED = f"the baseline does not segment it (DSC < {FLOOR})"
CLASSES_TEXT = ("Each class on the test images whose ground truth shows it (`n test`); the mean over "
                "foreground classes is the headline above. Differences and savings as above (calibrated "
                f"intervals). Where a method and the baseline both stay below DSC {FLOOR} on a class, neither "
                "segments it: the study cannot say whether the method saves labels there, at any interval; nor "
                "where the baseline alone stays below it at a label count (its savings are not measurable).")


def class_cells(cells: list[dict], name: str) -> list[dict]:
    """The cells with each row's scores replaced by the class's, on the images that show it
    (:func:`endopat.evaluate.class_rows`)."""
    return [dict(c, rows=rows) for c in cells for rows in [class_rows(c["rows"], name)] if rows]


def per_class(cells: list[dict], labels: Labels, baseline: str, seed: int, pool: int, order: list[str],
              summaries, rep: Path) -> tuple[list[dict], list[dict]]:
    """Rows per class, method and fraction (mean, difference, interval, verdict), and per-class
    savings; each class's curves in ``rep/curves_<class>.png``."""
    rows, savings = [], []
    for k in labels.foreground:
        name = labels.names[k]
        cs = class_cells(cells, name)
        if not cs:
            continue
        summ = summaries(cs, order)
        plot_curves(summ, rep / f"curves_{name}.png", name)
        comparison = Comparison(cs, baseline, seed, pool=pool)
        diffs = {(d["method"], d["fraction"]): d for d in comparison.differences()}
        base = {s["fraction"]: s["dice"]["mean"] for s in summ if s["method"] == baseline}
        for s in summ:
            d = diffs.get((s["method"], s["fraction"]), {})
            if d and max(s["dice"]["mean"], base.get(s["fraction"], 1.0)) < FLOOR:
                d = dict(d, verdict=f"neither segments it (DSC < {FLOOR} on both sides)")
            rows.append({"class": name, "method": s["method"], "fraction": s["fraction"], "labels": s["labels"],
                         "runs": s["runs"], "n_test": s["dice"]["n"] // max(1, s["runs"]),
                         "dice_mean": s["dice"]["mean"], "iou_mean": s["iou"]["mean"],
                         "dice_diff": d.get("dice_diff"), "run_ci_low": d.get("run_ci_low"),
                         "run_ci_high": d.get("run_ci_high"), "verdict": d.get("verdict", "")})
        for r in comparison.savings({(s["method"], s["fraction"]): s["labels"] for s in summ}):
            savings.append(class_saving(r, name))
    return rows, savings


def class_saving(r: dict, name: str) -> dict:
    """One per-class savings row; where the baseline does not segment the class at that count (DSC below
    :data:`FLOOR`), any start "reaches" it with the fewest labels, so no savings are read there."""
    if r["baseline_dice"] < FLOOR:
        unread = dict.fromkeys(("labels_needed", "labels_low", "labels_high", "saved_pct", "saved_low", "saved_high"))
        return dict(r, **unread, **{"class": name, "labels_text": UNSEGMENTED, "saved_text": "not measurable"})
    return dict(r, **{"class": name, "labels_text": fmt_labels(r, r["smallest"], r["largest"]),
                      "saved_text": fmt_saved(r, r["smallest"], r["largest"])})


def markdown(rows: list[dict], savings: list[dict]) -> list[str]:
    if not rows:
        return []
    ci = lambda r: "" if r["dice_diff"] is None else (  # noqa: E731
        f"{r['dice_diff']:+.3f} [{r['run_ci_low']:+.3f}, {r['run_ci_high']:+.3f}]")
    names = list(dict.fromkeys(r["class"] for r in rows))
    return ["## Per class", "", CLASSES_TEXT, "", *(f"![{n}](curves_{n}.png)" for n in names), "",
            "| class | method | fraction | labels | n test | DSC | IoU | DSC difference [95% CI] | verdict |",
            "|---|---|---|---:|---:|---:|---:|---|---|",
            *(f"| {r['class']} | {r['method']} | {r['fraction']} | {r['labels']} | {r['n_test']} | {r['dice_mean']:.3f} "
              f"| {r['iou_mean']:.3f} | {ci(r)} | {r['verdict']} |" for r in rows), "",
            *(["| class | method | baseline labels | baseline DSC | labels needed [95% CI] | saved [95% CI] |",
               "|---|---|---:|---:|---:|---:|",
               *(f"| {r['class']} | {r['method']} | {r['baseline_labels']} | {r['baseline_dice']:.3f} | "
                 f"{r['labels_text']} | {r['saved_text']} |" for r in savings), ""] if savings else [])]


def write(rows: list[dict], savings: list[dict], rep: Path) -> None:
    if rows:
        write_csv(rows, rep / "per_class.csv", CLASS_FIELDS)
        write_csv(savings, rep / "per_class_savings.csv", ["class", *[f for f in CLASS_SAVINGS_FIELDS if f != "class"]])


def section(cells: list[dict], labels: Labels, cfg, pool: int, order: list[str], summaries,
            rep: Path) -> tuple[list[str], str]:
    """A multi-class study's per-class results: written to ``rep`` (CSVs, curves), returned as
    report.md lines and report.html markup (both empty for a binary study)."""
    if labels.is_binary or not cells:
        return [], ""
    rows, savings = per_class(cells, labels, cfg.baseline, cfg.seed, pool, order, summaries, rep)
    write(rows, savings, rep)
    curves = [rep / f"curves_{n}.png" for n in dict.fromkeys(r["class"] for r in rows)]
    return markdown(rows, savings), class_section(rows, savings, curves, CLASSES_TEXT)
