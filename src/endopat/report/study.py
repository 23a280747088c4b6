"""The study report: Table 1, Fig. 4-6, label savings, differences from the baseline with their
intervals and variance components, and example overlays.

It reads whatever cells are finished (``cells/*/*/metrics.csv``), so it can be made at any time,
also from the merged folders of many shards (``endopat report RUN``). Outputs in ``RUN/report/``:
``report.md``, ``report.html`` (self-contained: figures embedded), ``table1.csv``,
``savings.csv``, ``stats.csv``, ``compute.csv`` (:mod:`endopat.report.compute`), ``curves.png``,
``ab_histograms.png``, ``overlays.png``.

Aggregation: a method at a fraction pools the per-image scores of all its finished runs (label
subsets x pretraining repeats x fine-tuning repeats; each is tested on the same test images); the
mean is therefore the mean of the run means, and median and IQR describe the pooled per-image
distribution. Curves show the mean over runs with the spread (min-max) of the run means. The
intervals (differences, savings) come from one hierarchical bootstrap (:mod:`endopat.report.compare`).
"""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

import numpy as np

from endopat import colour
from endopat.data.splits import parse_fraction
from endopat.errors import EndopatError
from endopat.evaluate import summarize
from endopat.io import atomic_write_text
from endopat.report import compute
from endopat.report.compare import Comparison, by_method_fraction, fmt_labels, fmt_saved
from endopat.report.figures import plot_ab_histograms, plot_curves, plot_overlays
from endopat.report.pretraining import task_figures
from endopat.report.tables import markdown_table, table_rows, write_csv
from endopat.study.grid import cells as grid_cells


def collect(out: Path) -> list[dict]:
    """One entry per finished cell: its cell.json plus the per-image rows of its metrics.csv."""
    cells = []
    for metrics in sorted((out / "cells").glob("*/*/metrics.csv")):
        meta = json.loads((metrics.parent / "cell.json").read_text())
        with open(metrics) as fh:
            rows = [dict(r, dice=float(r["dice"]), iou=float(r["iou"])) for r in csv.DictReader(fh)]
        cells.append(dict(meta, rows=rows, folder=str(metrics.parent)))
    return cells


def summaries(cells: list[dict], method_order: list[str]) -> list[dict]:

    groups = by_method_fraction(cells)
    out = []
    for (method, fraction), cs in sorted(groups.items(), key=lambda kv: (
            method_order.index(kv[0][0]) if kv[0][0] in method_order else 99, -parse_fraction(kv[0][1]))):
        rows = [r for c in cs for r in c["rows"]]
        labels = int(round(np.mean([c["labels"] for c in cs])))
        out.append({"method": method, "fraction": fraction, "labels": labels, "runs": len(cs),
                    "run_means": [float(np.mean([r["dice"] for r in c["rows"]])) for c in cs],
                    **summarize(rows)})
    return out


def _img_tag(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


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
    if key.startswith("labels_") or key == "runs_to_resolve":
        return f"{v:.1f}" if key.startswith("labels_") else f"{v:.0f}"
    return f"{v:+.3f}" if key in ("dice_diff", "ci_low", "ci_high", "run_ci_low", "run_ci_high") else f"{v:.3f}"


def _html_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    body = ""
    for r in rows:
        cells = [f"<td>{html.escape(_fmt(k, r.get(k)))}</td>" for k, _ in cols]
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


SHARES = [("var_pretrain_pct", "pretraining runs"), ("var_subset_pct", "label subsets"),
          ("var_finetune_pct", "fine-tuning seeds"), ("var_image_pct", "test images")]

SAVINGS_TEXT = ("Labels a method needs to reach the baseline's mean DSC at each baseline label count, read "
                "off both curves made monotone over all runs (interpolated in log2 labels), and the share "
                "of labels saved, each with a 95 % interval from the same bootstrap as the differences. "
                "An end outside the measured label counts is a bound, never an extrapolation: "
                "'<= n' (reached already at the smallest count), '> n' (not reached by the largest).")

NO_SAVINGS_TEXT = "No saving for: "

DIFF_TEXT = ("Mean test DSC difference with a 95 % interval from a hierarchical bootstrap that resamples "
             "pretraining runs, label subsets, fine-tuning seeds and test images (docs/method.md); the "
             "verdict reads that interval. The shares split the variance of the difference by its source "
             "('-': one member, not measured). 'Runs to resolve': runs per method for an interval that "
             "excludes 0 with 80 % power if the true difference is the one observed. Secondary: the "
             "per-image paired interval and Wilcoxon test of run-averaged scores, which ignore the "
             "variation between runs.")


def _diff_cells(r: dict) -> str:
    shares = " | ".join(_fmt(k, r.get(k)) for k, _ in SHARES)
    todo = (_fmt("runs_to_resolve", r["runs_to_resolve"]) if r["runs_to_resolve"] is not None
            else (r["runs_to_resolve_note"] or "-"))
    return (f"| {r['method']} | {r['fraction']} | {r['runs']} vs {r['baseline_runs']} | {r['dice_diff']:+.3f} "
            f"| [{r['run_ci_low']:+.3f}, {r['run_ci_high']:+.3f}] | {r['verdict']} | {shares} | {todo} "
            f"| [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['wilcoxon_p']:.3g} |")


def _selection_rows(cells: list[dict], cfg, summ: list[dict]) -> tuple[list[dict], list[dict]]:
    """Each method that chooses its labels (``selection``) against its random twin: the DSC
    differences and the labels saved by the choice alone, with the same intervals as above."""

    diffs, savings = [], []
    for m in cfg.methods:
        twin = cfg.random_twin(m)
        if twin is None or not any(c["method"] == m.name for c in cells):
            continue
        comparison = Comparison(cells, twin.name, cfg.seed)
        diffs += [dict(r, vs=twin.name) for r in comparison.differences() if r["method"] == m.name]
        for r in comparison.savings({(s["method"], s["fraction"]): s["labels"] for s in summ}):
            if r["method"] == m.name:
                savings.append(dict(r, vs=twin.name, labels_text=fmt_labels(r, r["smallest"], r["largest"]),
                                    saved_text=fmt_saved(r, r["smallest"], r["largest"])))
    return diffs, savings


SELECTION_TEXT = ("A method that chooses its labeled frames (`selection`, endopat.study.selection) against the "
                  "same method drawing them at random, at the same label counts: the DSC difference and the "
                  "labels saved by the choice alone (intervals as above).")


SOURCES_TEXT = ("Files of each pretraining source that belong to the test split: the same file, the same pixels, "
                "or the same video (group) as a test image (endopat.study.sources). `test_frames: exclude` (the "
                "default) leaves them out of pretraining; `keep` is the paper's transductive setting.")


def _markdown(cfg, data, n_cells: int, total: int, table: list[dict], sav: list[dict], pst: list[dict],
              tasks: list[tuple[Path, str]] = (), sel_diff: list[dict] = (), sel_sav: list[dict] = (),
              no_sav: list[tuple[str, str]] = (), cost: list[dict] = ()) -> str:
    """report.md: the same tables as the HTML page, rounded and labelled."""
    sav_md = "\n".join(f"| {r['method']} | {r['baseline_labels']} | {r['baseline_dice']:.3f} | "
                       f"{r['labels_text']} | {r['saved_text']} |" for r in sav)
    md = [f"# Study report: {cfg.name}", "",
          f"{n_cells} of {total} cells finished. Test set: {len(data.split.test)} images from videos "
          f"disjoint from training and validation ({len(data.split.train)} training, {len(data.split.val)} "
          "validation images).", "",
          "## Table 1: test DSC and IoU per image (mean with % change vs baseline, median, IQR)", "",
          markdown_table(table), "",
          "## DSC against the number of labeled images (paper Fig. 5/6)", "", "![curves](curves.png)", "",
          "## Label savings", "", SAVINGS_TEXT, "",
          "| method | baseline labels | baseline DSC | labels needed [95% CI] | saved [95% CI] |",
          "|---|---:|---:|---:|---:|", sav_md, "",
          *([NO_SAVINGS_TEXT + "; ".join(f"{m} ({why})" for m, why in no_sav) + ".", ""] if no_sav else []),
          "## Differences from the baseline", "", DIFF_TEXT, "",
          "| method | fraction | runs (vs baseline) | mean DSC difference | 95% CI | verdict | "
          + " | ".join(f"share: {t}" for _, t in SHARES) + " | runs to resolve | 95% CI, images only | Wilcoxon p |",
          "|---|---|---|---:|---|---|" + "---:|" * len(SHARES) + "---|---|---:|",
          *map(_diff_cells, pst), "",
          *(["## Label selection", "", SELECTION_TEXT, "",
             "| method | vs | fraction | mean DSC difference | 95% CI | verdict |", "|---|---|---|---:|---|---|",
             *(f"| {r['method']} | {r['vs']} | {r['fraction']} | {r['dice_diff']:+.3f} | "
               f"[{r['run_ci_low']:+.3f}, {r['run_ci_high']:+.3f}] | {r['verdict']} |" for r in sel_diff), "",
             "| method | vs | labels of the random twin | its DSC | labels needed [95% CI] | saved [95% CI] |",
             "|---|---|---:|---:|---:|---:|",
             *(f"| {r['method']} | {r['vs']} | {r['baseline_labels']} | {r['baseline_dice']:.3f} | "
               f"{r['labels_text']} | {r['saved_text']} |" for r in sel_sav), ""] if sel_diff else []),
          "## Pretraining sources and the test split", "", SOURCES_TEXT, "",
          *[f"- **{o.name}** (`{o.source}`): {o.sentence()}" for o in data.sources.values()], "",
          "## What each pretraining learnt (sample figures)", "",
          *[f"![{caption}]({png.name})\n\n{caption}\n" for png, caption in tasks],
          "## a/b colour distributions of the unlabeled sources (paper Fig. 4)", "", "![ab](ab_histograms.png)", "",
          "## Example test images (tinted: instrument; yellow: outline)", "", "![overlays](overlays.png)", "",
          *compute.markdown(list(cost))]
    return "\n".join(md)


STATS_FIELDS = ["method", "fraction", "runs", "baseline_runs", "pretrain_runs", "n_images", "dice_diff",
                "run_ci_low", "run_ci_high", "verdict", *(k for k, _ in SHARES), "runs_to_resolve",
                "runs_to_resolve_note", "ci_low", "ci_high", "wilcoxon_p"]
SAVINGS_FIELDS = ["method", "baseline_labels", "baseline_dice", "smallest", "largest", "labels_needed", "how", "labels_low",
                  "labels_high", "low_below", "high_above", "saved_pct", "saved_low", "saved_high"]


def _compute_table(cost: list[dict]) -> str:
    rows = "".join(f"<tr><td>{html.escape(r['what'])}</td><td>{r['runs']}</td><td>{r['hours']:.2f}</td>"
                   f"<td>{r['minutes_per_run']:.1f}</td></tr>" for r in cost)
    return ("<table><thead><tr><th>what</th><th>runs</th><th>hours</th><th>minutes per run</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _html(cfg, data, n_cells: int, total: int, table: list[dict], sav: list[dict], pst: list[dict],
          tasks: list[tuple[Path, str]], curves: Path | None, hist_png: Path | None, overlays: Path | None,
          no_sav: list[tuple[str, str]] = (), cost: list[dict] = ()) -> str:
    """report.html: the tables of report.md (rounded alike) and the figures, embedded."""
    cols = [("method", "method"), ("labels", "labels"), ("fraction", "fraction"), ("runs", "runs"),
            ("dice_mean", "DSC mean"), ("dice_change_pct", "DSC % vs baseline"), ("dice_median", "DSC median"),
            ("dice_q1", "DSC Q1"), ("dice_q3", "DSC Q3"), ("iou_mean", "IoU mean"),
            ("iou_change_pct", "IoU % vs baseline"), ("iou_median", "IoU median"), ("iou_q1", "IoU Q1"),
            ("iou_q3", "IoU Q3")]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(cfg.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}img{{max-width:100%}}
figure{{margin:1em 0}}figcaption{{color:#555;font-size:90%}}</style></head><body>
<h1>Study report: {html.escape(cfg.name)}</h1>
<p id="progress">{n_cells} of {total} cells finished. Test set: {len(data.split.test)} images from videos disjoint
from training and validation.</p>
<h2>Table 1</h2>{_html_table(table, cols)}
<h2>DSC against labeled-set size</h2>{_img_tag(curves, "mean test DSC against labeled images")}
<h2>Label savings</h2><p>{html.escape(SAVINGS_TEXT)}</p>{_html_table(sav, [("method", "method"),
    ("baseline_labels", "baseline labels"), ("baseline_dice", "baseline DSC"),
    ("labels_text", "labels needed [95% CI]"), ("saved_text", "saved [95% CI]")])}
{"<p>" + html.escape(NO_SAVINGS_TEXT + "; ".join(f"{m} ({why})" for m, why in no_sav)) + ".</p>" if no_sav else ""}
<h2>Differences from the baseline</h2><p>{html.escape(DIFF_TEXT)}</p>{_html_table(pst, [("method", "method"),
    ("fraction", "fraction"), ("runs", "runs"), ("baseline_runs", "baseline runs"), ("n_images", "images"),
    ("dice_diff", "mean DSC diff"), ("run_ci_low", "CI low"), ("run_ci_high", "CI high"), ("verdict", "verdict"),
    *[(k, f"share: {t}") for k, t in SHARES], ("runs_to_resolve", "runs to resolve"),
    ("runs_to_resolve_note", "(why not)"), ("ci_low", "CI low (images only)"), ("ci_high", "CI high (images only)"),
    ("wilcoxon_p", "Wilcoxon p")])}
<h2>Pretraining sources and the test split</h2><p>{html.escape(SOURCES_TEXT)}</p>
<ul id="sources">{"".join(f"<li><b>{html.escape(o.name)}</b> ({html.escape(o.source)}): {html.escape(o.sentence())}</li>"
                         for o in data.sources.values())}</ul>
<h2>What each pretraining learnt</h2>{"".join(_img_tag(png, caption) for png, caption in tasks)}
<h2>a/b colour distributions</h2>{_img_tag(hist_png, "log a/b histograms per unlabeled source")}
<h2>Example test images</h2>{_img_tag(overlays, "ground truth and predictions")}
{"<h2>Compute</h2>" + _compute_table(cost) if cost else ""}
</body></html>"""
    return page


VS_TEXT = ("Each method against {vs} instead of the baseline, at the fractions both ran: the same "
           "bootstrap, verdict and shares as above (e.g. a volume ablation: more frames or steps against fewer).")


def _vs_sections(cells: list[dict], cfg, vs: tuple[str, ...], rep: Path, order: list[str]) -> list[str]:
    """``endopat report --vs METHOD``: the differences table against another row; one CSV each."""
    md = []
    for name in vs:
        rows = Comparison(cells, name, cfg.seed).differences()
        rows.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 99,
                                 -parse_fraction(r["fraction"])))
        slug = next(m.slug for m in cfg.methods if m.name == name)
        write_csv(rows, rep / f"stats-vs-{slug}.csv", STATS_FIELDS)
        md += [f"## Differences from {name}", "", VS_TEXT.format(vs=f"'{name}'"), "",
               "| method | fraction | runs (vs reference) | mean DSC difference | 95% CI | verdict | "
               + " | ".join(f"share: {t}" for _, t in SHARES) + " | runs to resolve | 95% CI, images only | Wilcoxon p |",
               "|---|---|---|---:|---|---|" + "---:|" * len(SHARES) + "---|---|---:|", *map(_diff_cells, rows), ""]
    return md


def write_study_report(out: str | Path, cfg, data, vs: tuple[str, ...] = ()) -> Path:
    """Write ``RUN/report/``; ``vs`` names methods to compare every method against as well (their
    tables follow the baseline's)."""

    out = Path(out)
    names = [m.name for m in cfg.methods]
    for name in vs:
        if name not in names:
            raise EndopatError(f"--vs '{name}': no such method in {out / 'study.json'} (the methods: "
                               + ", ".join(names) + ")")
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    cells = collect(out)
    order = [m.name for m in cfg.methods]
    summ = summaries(cells, order)
    table = table_rows(summ, cfg.baseline)
    for row, s in zip(table, summ):
        row["fraction"] = s["fraction"]
        row["runs"] = s["runs"]
    write_csv(table, rep / "table1.csv")
    comparison = Comparison(cells, cfg.baseline, cfg.seed)
    sav = comparison.savings({(s["method"], s["fraction"]): s["labels"] for s in summ}) if cells else []
    sav.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, r["baseline_labels"]))
    for r in sav:
        r["labels_text"] = fmt_labels(r, r["smallest"], r["largest"])
        r["saved_text"] = fmt_saved(r, r["smallest"], r["largest"])
    no_sav = comparison.savings_missing() if cells else []
    write_csv(sav, rep / "savings.csv", SAVINGS_FIELDS)
    pst = comparison.differences() if cells else []
    pst.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, -parse_fraction(r["fraction"])))
    write_csv(pst, rep / "stats.csv", STATS_FIELDS)
    sel_diff, sel_sav = _selection_rows(cells, cfg, summ)
    if sel_diff:
        write_csv(sel_diff, rep / "selection.csv", ["vs", *STATS_FIELDS])
        write_csv(sel_sav, rep / "selection_savings.csv", ["vs", *SAVINGS_FIELDS])
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

    cost = compute.compute_rows(out, cells, order)
    write_csv(cost, rep / "compute.csv", ["what", "runs", "seconds", "hours", "minutes_per_run"])
    md = _markdown(cfg, data, len(cells), total, table, sav, pst, tasks, sel_diff, sel_sav, no_sav, cost)
    if vs:  # after the baseline's differences
        head, sep, tail = md.partition("\n## Pretraining sources and the test split")
        md = head + "\n".join(_vs_sections(cells, cfg, tuple(vs), rep, order)) + sep + tail
    atomic_write_text(rep / "report.md", md)

    atomic_write_text(rep / "report.html", _html(cfg, data, len(cells), total, table, sav, pst, tasks,
                                                 curves, hist_png, overlays, no_sav, cost))
    return rep / "report.md"
