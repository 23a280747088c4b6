"""The study report: Table 1, Fig. 4-6, label savings, paired statistics and example overlays.

It reads whatever cells are finished (``cells/*/*/metrics.csv``), so it can be made at any time,
also from the merged folders of many shards (``endopat report RUN``). Outputs in ``RUN/report/``:
``report.md``, ``report.html`` (self-contained: figures embedded), ``table1.csv``,
``savings.csv``, ``stats.csv``, ``curves.png``, ``ab_histograms.png``, ``overlays.png``.

Aggregation: a method at a fraction pools the per-image scores of all its finished runs (subsets and
fine-tuning repeats; each is tested on the same test images); the mean is therefore the mean of the subset means, and
median and IQR describe the pooled per-image distribution. Curves show the mean over subsets with
the spread (min-max) of the subset means. Paired statistics first average each test image's score
over the subsets of a method, then compare images paired with the baseline.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from endopat.data.splits import parse_fraction
from endopat.io import atomic_write_text
from endopat.report import stats
from endopat.report.tables import markdown_table, table_rows, write_csv


def collect(out: Path) -> list[dict]:
    """One entry per finished cell: its cell.json plus the per-image rows of its metrics.csv."""
    cells = []
    for metrics in sorted((out / "cells").glob("*/*/metrics.csv")):
        meta = json.loads((metrics.parent / "cell.json").read_text())
        with open(metrics) as fh:
            rows = [dict(r, dice=float(r["dice"]), iou=float(r["iou"])) for r in csv.DictReader(fh)]
        cells.append(dict(meta, rows=rows, folder=str(metrics.parent)))
    return cells


def _by_method_fraction(cells: list[dict]) -> dict[tuple[str, str], list[dict]]:
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


def summaries(cells: list[dict], method_order: list[str]) -> list[dict]:
    from endopat.evaluate import summarize

    groups = _by_method_fraction(cells)
    out = []
    for (method, fraction), cs in sorted(groups.items(), key=lambda kv: (
            method_order.index(kv[0][0]) if kv[0][0] in method_order else 99, -parse_fraction(kv[0][1]))):
        rows = [r for c in cs for r in c["rows"]]
        labels = int(round(np.mean([c["labels"] for c in cs])))
        out.append({"method": method, "fraction": fraction, "labels": labels, "subsets": len(cs),
                    "subset_means": [float(np.mean([r["dice"] for r in c["rows"]])) for c in cs],
                    **summarize(rows)})
    return out


def _scores(cell: dict, metric: str = "dice") -> dict[str, float]:
    return {r["id"]: r[metric] for r in cell["rows"]}


def paired_stats(cells: list[dict], baseline: str) -> list[dict]:
    """Per method and fraction: the mean DSC difference to the baseline, its interval over runs
    and test images (:func:`stats.cluster_bootstrap_diff`) with a verdict in words, and, secondary,
    the per-image paired interval and Wilcoxon test of the run-averaged scores."""
    groups = _by_method_fraction(cells)
    out = []
    for (method, fraction), cs in groups.items():
        if method == baseline or (baseline, fraction) not in groups:
            continue
        a = _per_image_mean(cs)
        b = _per_image_mean(groups[(baseline, fraction)])
        ids = sorted(set(a) & set(b))
        if not ids:
            continue
        va, vb = [a[i] for i in ids], [b[i] for i in ids]
        mean, lo, hi = stats.paired_bootstrap_ci(va, vb)
        runs = lambda group: [[sc[i] for i in ids] for sc in map(_scores, group)]  # noqa: E731
        _, run_lo, run_hi = stats.cluster_bootstrap_diff(runs(cs), runs(groups[(baseline, fraction)]))
        out.append({"method": method, "fraction": fraction, "runs": len(cs),
                    "baseline_runs": len(groups[(baseline, fraction)]), "n_images": len(ids),
                    "dice_diff": mean, "run_ci_low": run_lo, "run_ci_high": run_hi,
                    "verdict": stats.verdict(run_lo, run_hi),
                    "ci_low": lo, "ci_high": hi, "wilcoxon_p": stats.wilcoxon_p(va, vb)})
    return out


def savings(summ: list[dict], baseline: str) -> list[dict]:
    curves: dict[str, dict[float, float]] = defaultdict(dict)
    for s in summ:
        curves[s["method"]][s["labels"]] = s["dice"]["mean"]
    if baseline not in curves:
        return []
    out = []
    for method, curve in curves.items():
        if method == baseline:
            continue
        for n_b, r in stats.label_savings(curve, curves[baseline]).items():
            out.append({"method": method, "baseline_labels": n_b, "baseline_dice": curves[baseline][n_b], **r})
    return out


def plot_curves(summ: list[dict], path: Path) -> Path:
    from endopat.report.figures import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_method: dict[str, list[dict]] = defaultdict(list)
    for s in summ:
        by_method[s["method"]].append(s)
    for method, ss in by_method.items():
        ss = sorted(ss, key=lambda s: s["labels"])
        x = [s["labels"] for s in ss]
        y = [s["dice"]["mean"] for s in ss]
        lo = [min(s["subset_means"]) for s in ss]
        hi = [max(s["subset_means"]) for s in ss]
        line, = ax.plot(x, y, marker="o", label=method)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labeled training images")
    ax.set_ylabel("mean test DSC")
    ax.set_title("DSC against labeled-set size (band: min-max over runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_overlays(cells: list[dict], data, n: int, path: Path, method_order: list[str]) -> Path | None:
    """Test images with ground truth and each method's prediction at the smallest fraction, subset 0."""
    import torch

    from endopat.data.labeled import load_image, load_mask
    from endopat.evaluate import Segmenter, dice_iou
    from endopat.predict import overlay
    from endopat.report.figures import _pyplot, _save

    if n == 0 or not cells:
        return None
    smallest = min((c["fraction"] for c in cells), key=parse_fraction)
    chosen = {c["method"]: c for c in cells if c["fraction"] == smallest and c["subset"] == 0
              and c.get("repeat", 0) == 0}
    methods = [m for m in method_order if m in chosen]
    test = data.ids(data.split.test)
    picks = [test[int(i)] for i in np.linspace(0, len(test) - 1, min(n, len(test)))]
    images = [load_image(s) for s in picks]
    gts = [load_mask(s, im.shape[:2]) for s, im in zip(picks, images)]
    preds = {}
    for m in methods:
        seg = Segmenter(Path(chosen[m]["folder"]) / "run" / "best.pt")
        preds[m] = [p >= seg.threshold for p in seg.probabilities(images)]
    plt = _pyplot()
    cols = 1 + len(methods)
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.2 * cols, 2.2 * len(picks)), squeeze=False)
    for i, (im, gt) in enumerate(zip(images, gts)):
        axes[i][0].imshow(overlay(im, gt))
        axes[i][0].set_title("ground truth" if i == 0 else "", fontsize=8)
        for j, m in enumerate(methods, start=1):
            d, _ = dice_iou(torch.from_numpy(preds[m][i])[None], torch.from_numpy(gt)[None])
            axes[i][j].imshow(overlay(im, preds[m][i]))
            axes[i][j].set_title(f"{m}\nDSC {float(d[0]):.2f}" if i == 0 else f"DSC {float(d[0]):.2f}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"test images, label fraction {smallest}, subset 0", fontsize=9)
    return _save(fig, path)


def _img_tag(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _saved_text(r: dict) -> str:
    """The share saved; a method already above the target at its smallest label count only bounds
    it ("at least"), and says nothing when that count is the baseline's own."""
    if r["how"] != "at most":
        return stats.fmt_pct(r["saved_pct"])
    if r["saved_pct"] is not None and r["saved_pct"] >= 0.5:
        return f"at least {stats.fmt_pct(r['saved_pct'])} (reached at the smallest label count)"
    return "not measurable below the smallest label count"


def _fmt(key: str, v) -> str:
    """A table value as report.md shows it: changes and shares as whole percentages, p-values to 3
    significant digits, label counts to one decimal, scores to three."""
    if v is None:
        return "-"
    if not isinstance(v, float):
        return str(v)
    if key.endswith("change_pct"):
        return f"{v:+.0f}%"
    if key.endswith("_pct"):
        return f"{v:.0f}%"
    if key.endswith("_p"):
        return f"{v:.3g}"
    if key == "labels_needed":
        return f"{v:.1f}"
    return f"{v:+.3f}" if key in ("dice_diff", "ci_low", "ci_high") else f"{v:.3f}"


def _html_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    body = ""
    for r in rows:
        cells = [f"<td>{html.escape(_fmt(k, r.get(k)))}</td>" for k, _ in cols]
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown(cfg, data, n_cells: int, total: int, table: list[dict], sav: list[dict], pst: list[dict],
              tasks: list[tuple[Path, str]] = ()) -> str:
    """report.md: the same tables as the HTML page, rounded and labelled."""
    sav_md = "\n".join(
        f"| {r['method']} | {r['baseline_labels']} | {r['baseline_dice']:.3f} | "
        f"{'-' if r['labels_needed'] is None else ('<= ' if r['how'] == 'at most' else '') + format(r['labels_needed'], '.1f')} | "
        + _saved_text(r) + " |" for r in sav)
    st_md = "\n".join(
        f"| {r['method']} | {r['fraction']} | {r['runs']} vs {r['baseline_runs']} | {r['dice_diff']:+.3f} "
        f"| [{r['run_ci_low']:+.3f}, {r['run_ci_high']:+.3f}] | {r['verdict']} "
        f"| [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['wilcoxon_p']:.3g} |" for r in pst)
    md = [f"# Study report: {cfg.name}", "",
          f"{n_cells} of {total} cells finished. Test set: {len(data.split.test)} images from videos "
          f"disjoint from training and validation ({len(data.split.train)} training, {len(data.split.val)} "
          "validation images).", "",
          "## Table 1: test DSC and IoU per image (mean with % change vs baseline, median, IQR)", "",
          markdown_table(table), "",
          "## DSC against the number of labeled images (paper Fig. 5/6)", "", "![curves](curves.png)", "",
          "## Label savings", "",
          "Labels a method needs to reach the baseline's mean DSC at each baseline label count "
          "(interpolated in log2 labels on the method's curve), and the share of labels saved.", "",
          "| method | baseline labels | baseline DSC | labels needed | saved |", "|---|---:|---:|---:|---:|",
          sav_md, "",
          "## Differences from the baseline", "",
          "Mean test DSC difference with a 95 % interval from a two-stage bootstrap that resamples runs "
          "(label subsets x fine-tuning seeds) and then test images (docs/method.md); the verdict reads "
          "that interval. Secondary: the per-image paired interval and Wilcoxon test of run-averaged "
          "scores, which ignore the variation between runs.", "",
          "| method | fraction | runs (vs baseline) | mean DSC difference | 95% CI, runs + images | verdict "
          "| 95% CI, images only | Wilcoxon p |", "|---|---|---|---:|---|---|---|---:|",
          st_md, "",
          "## What each pretraining learnt (sample figures)", "",
          *[f"![{caption}]({png.name})\n\n{caption}\n" for png, caption in tasks],
          "## a/b colour distributions of the unlabeled sources (paper Fig. 4)", "", "![ab](ab_histograms.png)", "",
          "## Example test images (tinted: instrument; yellow: outline)", "", "![overlays](overlays.png)", ""]
    return "\n".join(md)


def write_study_report(out: str | Path, cfg, data) -> Path:
    from endopat import colour
    from endopat.report.figures import plot_ab_histograms
    from endopat.report.pretraining import task_figures
    from endopat.study.grid import cells as grid_cells

    out = Path(out)
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    cells = collect(out)
    order = [m.name for m in cfg.methods]
    summ = summaries(cells, order)
    table = table_rows(summ, cfg.baseline)
    for row, s in zip(table, summ):
        row["fraction"] = s["fraction"]
        row["subsets"] = s["subsets"]
    write_csv(table, rep / "table1.csv")
    sav = savings(summ, cfg.baseline)
    write_csv(sav, rep / "savings.csv", ["method", "baseline_labels", "baseline_dice", "labels_needed",
                                          "saved_pct", "how"])
    pst = paired_stats(cells, cfg.baseline)
    write_csv(pst, rep / "stats.csv", ["method", "fraction", "runs", "baseline_runs", "n_images", "dice_diff",
                                        "run_ci_low", "run_ci_high", "verdict", "ci_low", "ci_high", "wilcoxon_p"])
    curves = plot_curves(summ, rep / "curves.png") if summ else None
    hists = {}
    for name in cfg.unlabeled:
        p = out / "stages" / "pretrain" / name / "ab_histogram.json"
        if p.is_file():
            hists[name] = colour.ABHistogram.load(p)
    hist_png = plot_ab_histograms(hists, rep / "ab_histograms.png") if hists else None
    try:
        overlays = plot_overlays(cells, data, cfg.overlays, rep / "overlays.png", order)
    except Exception as err:  # a figure must not lose the tables; say why it is missing
        overlays = None
        atomic_write_text(rep / "overlays.error.txt", f"{err.__class__.__name__}: {err}\n")
    total = len(grid_cells(cfg, data.split))
    tasks = task_figures(out, cfg, rep)

    atomic_write_text(rep / "report.md", _markdown(cfg, data, len(cells), total, table, sav, pst, tasks))

    cols = [("method", "method"), ("labels", "labels"), ("fraction", "fraction"), ("subsets", "subsets"),
            ("dice_mean", "DSC mean"), ("dice_change_pct", "DSC % vs baseline"), ("dice_median", "DSC median"),
            ("dice_q1", "DSC Q1"), ("dice_q3", "DSC Q3"), ("iou_mean", "IoU mean"),
            ("iou_change_pct", "IoU % vs baseline"), ("iou_median", "IoU median"), ("iou_q1", "IoU Q1"),
            ("iou_q3", "IoU Q3")]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(cfg.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}img{{max-width:100%}}
figure{{margin:1em 0}}figcaption{{color:#555;font-size:90%}}</style></head><body>
<h1>Study report: {html.escape(cfg.name)}</h1>
<p id="progress">{len(cells)} of {total} cells finished. Test set: {len(data.split.test)} images from videos disjoint
from training and validation.</p>
<h2>Table 1</h2>{_html_table(table, cols)}
<h2>DSC against labeled-set size</h2>{_img_tag(curves, "mean test DSC against labeled images")}
<h2>Label savings</h2>{_html_table(sav, [("method", "method"), ("baseline_labels", "baseline labels"),
    ("baseline_dice", "baseline DSC"), ("labels_needed", "labels needed"), ("saved_pct", "% saved"), ("how", "how")])}
<h2>Differences from the baseline</h2>{_html_table(pst, [("method", "method"), ("fraction", "fraction"),
    ("runs", "runs"), ("baseline_runs", "baseline runs"), ("n_images", "images"), ("dice_diff", "mean DSC diff"),
    ("run_ci_low", "CI low (runs + images)"), ("run_ci_high", "CI high (runs + images)"), ("verdict", "verdict"),
    ("ci_low", "CI low (images)"), ("ci_high", "CI high (images)"), ("wilcoxon_p", "Wilcoxon p")])}
<h2>What each pretraining learnt</h2>{"".join(_img_tag(png, caption) for png, caption in tasks)}
<h2>a/b colour distributions</h2>{_img_tag(hist_png, "log a/b histograms per unlabeled source")}
<h2>Example test images</h2>{_img_tag(overlays, "ground truth and predictions")}
</body></html>"""
    atomic_write_text(rep / "report.html", page)
    return rep / "report.md"
