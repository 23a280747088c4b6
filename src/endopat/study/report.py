"""The study report: Table 1, Fig. 4-6, label savings, differences from the baseline with their
intervals and variance components, and example overlays.

It reads whatever cells are finished (``cells/*/*/metrics.csv``), so it can be made at any time,
also from the merged folders of many shards (``endopat report RUN``). Outputs in ``RUN/report/``:
``report.md``, ``report.html`` (self-contained: figures embedded), ``table1.csv``,
``savings.csv``, ``stats.csv``, ``compute.csv`` (:mod:`endopat.report.compute`), ``unlabeled.csv``
(semi-supervised rows: :mod:`endopat.report.unlabeled`), ``curves.png``,
``ab_histograms.png``, ``overlays.png``.

Aggregation: a method at a fraction pools the per-image scores of all its finished runs (label
subsets x pretraining repeats x fine-tuning repeats; each is tested on the same test images); the
mean is therefore the mean of the run means, and median and IQR describe the pooled per-image
distribution. Curves show the mean over runs with the spread (min-max) of the run means. The
intervals (differences, savings) come from the calibrated inference of :mod:`endopat.report.compare`.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from endopat import colour
from endopat.data.splits import parse_fraction
from endopat.errors import EndopatError, reading
from endopat.evaluate import summarize
from endopat.io import atomic_write_text
from endopat.report import compute, unlabeled
from endopat.report.compare import Comparison, by_method_fraction, fmt_labels, fmt_saved
from endopat.report.figures import plot_ab_histograms, plot_curves, plot_overlays
from endopat.study import report_classes
from endopat.study.report_html import fmt, page, unlabeled_section
from endopat.study.report_tasks import task_figures
from endopat.report.tables import markdown_table, table_rows, write_csv
from endopat.report.texts import (DIFF_TEXT, PROTOCOL_TEXT, NO_SAVINGS_TEXT, SAVINGS_TEXT, SELECTION_TEXT, SHARES, SOURCES_TEXT, PAIRS_TEXT,
                                   VS_TEXT)
from endopat.study.grid import cells as grid_cells
from endopat.study.protocol import deviations
from endopat.study.sources import pair_likeness


class _CellFile(BaseModel):
    """The fields of a finished cell's cell.json the report reads (typed: a damaged file is one line)."""

    method: str
    fraction: str
    subset: int
    repeat: int = 0
    pretrain_rep: int = 0
    labels: int
    seconds: float | None = None
    model_config = ConfigDict(extra="allow")

    @field_validator("fraction")
    @classmethod
    def _a_fraction(cls, v: str) -> str:
        try:
            parse_fraction(v)
        except EndopatError as err:
            raise ValueError(str(err)) from None  # pydantic's error, which reading() turns into one naming the cell
        return v


def collect(out: Path) -> list[dict]:
    """One entry per finished cell: its cell.json plus the per-image rows of its metrics.csv."""
    cells = []
    for metrics in sorted((out / "cells").glob("*/*/metrics.csv")):
        with reading(metrics.parent, "finished cell (cell.json + metrics.csv)"), open(metrics) as fh:
            meta = _CellFile.model_validate_json((metrics.parent / "cell.json").read_bytes()).model_dump()
            rows = [dict(r, dice=float(r["dice"]), iou=float(r["iou"])) for r in csv.DictReader(fh)]
            if not rows:
                raise EndopatError(f"{metrics}: no per-image scores; move {metrics.parent} away and the study "
                                   "runs that cell again")
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


def _diff_table(rows: list[dict], against: str = "baseline") -> list[str]:
    return ["| method | fraction | runs (vs " + against + ") | mean DSC difference | 95% CI | df | verdict | "
            + " | ".join(f"share: {t}" for _, t in SHARES) + " | runs to resolve | 95% CI, images only | Wilcoxon p |",
            "|---|---|---|---:|---|---:|---|" + "---:|" * len(SHARES) + "---|---|---:|", *map(_diff_cells, rows)]


def _diff_cells(r: dict) -> str:
    shares = " | ".join(fmt(k, r.get(k)) for k, _ in SHARES)
    todo = (f"{fmt('runs_to_resolve', r['runs_to_resolve'])} ({r['runs_to_resolve_note']})"
            if r["runs_to_resolve"] is not None else (r["runs_to_resolve_note"] or "-"))
    return (f"| {r['method']} | {r['fraction']} | {r['runs']} vs {r['baseline_runs']} | {r['dice_diff']:+.3f} "
            f"| [{r['run_ci_low']:+.3f}, {r['run_ci_high']:+.3f}] | {fmt('df', r.get('df'))} | {r['verdict']} "
            f"| {shares} | {todo} "
            f"| [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | {r['wilcoxon_p']:.3g} |")


def _selection_rows(cells: list[dict], cfg, summ: list[dict], base: Comparison) -> tuple[list[dict], list[dict]]:
    """Each method that chooses its labels (``selection``) against its random twin: the DSC
    differences and the labels saved by the choice alone, with the same intervals as above."""

    diffs, savings = [], []
    for m in cfg.methods:
        twin = cfg.random_twin(m)
        if twin is None or not any(c["method"] == m.name for c in cells):
            continue
        comparison = base.against(twin.name)
        diffs += [dict(r, vs=twin.name) for r in comparison.differences() if r["method"] == m.name]
        for r in comparison.savings({(s["method"], s["fraction"]): s["labels"] for s in summ}):
            if r["method"] == m.name:
                savings.append(dict(r, vs=twin.name, labels_text=fmt_labels(r, r["smallest"], r["largest"]),
                                    saved_text=fmt_saved(r, r["smallest"], r["largest"])))
    return diffs, savings


def _markdown(cfg, data, n_cells: int, total: int, table: list[dict], sav: list[dict], pst: list[dict],
              tasks: list[tuple[Path, str]] = (), sel_diff: list[dict] = (), sel_sav: list[dict] = (),
              no_sav: list[tuple[str, str]] = (), cost_md: list[str] = (), vs_md: list[str] = (),
              class_md: list[str] = (), pairs: list[tuple[str, str]] = (), semi_md: list[str] = ()) -> str:
    """report.md: the same tables as the HTML page, rounded and labelled."""
    sav_md = "\n".join(f"| {r['method']} | {r['baseline_labels']} | {r['baseline_dice']:.3f} | "
                       f"{r['labels_text']} | {r['saved_text']} |" for r in sav)
    md = [f"# Study report: {cfg.name}", "",
          f"{n_cells} of {total} cells finished. Test set: {len(data.split.test)} images from videos "
          f"disjoint from training and validation ({len(data.split.train)} training, {len(data.split.val)} "
          "validation images).", "",
          PROTOCOL_TEXT.format(protocol=cfg.protocol), "", *[f"- {d}" for d in deviations(cfg, data.labels)], "",
          "## Table 1: test DSC and IoU per image (mean with % change vs baseline, median, IQR)", "",
          markdown_table(table), "",
          "## DSC against the number of labeled images (paper Fig. 5/6)", "", "![curves](curves.png)", "",
          "## Label savings", "", SAVINGS_TEXT, "",
          "| method | baseline labels | baseline DSC | labels needed [95% CI] | saved [95% CI] |",
          "|---|---:|---:|---:|---:|", sav_md, "",
          *([NO_SAVINGS_TEXT + "; ".join(f"{m} ({why})" for m, why in no_sav) + ".", ""] if no_sav else []),
          "## Differences from the baseline", "", DIFF_TEXT, "", *_diff_table(pst), "", *vs_md, *class_md, *semi_md,
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
          *([PAIRS_TEXT, "", *(f"- **{name}**: {text}" for name, text in pairs), ""] if pairs else []),
          "## What each pretraining learnt (sample figures)", "",
          *[f"![{caption}]({png.name})\n\n{caption}\n" for png, caption in tasks],
          "## a/b colour distributions of the unlabeled sources (paper Fig. 4)", "", "![ab](ab_histograms.png)", "",
          ("## Example test images (tinted: instrument; yellow: outline)" if data.labels.is_binary else
           "## Example test images (each class in its colour, outlined)"), "", "![overlays](overlays.png)", "",
          *cost_md]
    return "\n".join(md)


STATS_FIELDS = ["method", "fraction", "runs", "baseline_runs", "pretrain_runs", "n_images", "dice_diff",
                "run_ci_low", "run_ci_high", "df", "verdict", *(k for k, _ in SHARES), "runs_to_resolve",
                "runs_to_resolve_note", "ci_low", "ci_high", "wilcoxon_p"]
SAVINGS_FIELDS = ["method", "baseline_labels", "baseline_dice", "smallest", "largest", "labels_needed", "how", "labels_low",
                  "labels_high", "low_below", "high_above", "saved_pct", "saved_low", "saved_high"]


def _vs_sections(comparison: Comparison, cfg, vs: tuple[str, ...], rep: Path, order: list[str]) -> list[str]:
    """``endopat report --vs METHOD``: the differences table against another row; one CSV each."""
    md = []
    for name in vs:
        rows = comparison.against(name).differences()
        rows.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 99,
                                 -parse_fraction(r["fraction"])))
        slug = next(m.slug for m in cfg.methods if m.name == name)
        write_csv(rows, rep / f"stats-vs-{slug}.csv", STATS_FIELDS)
        md += [f"## Differences from {name}", "", VS_TEXT.format(vs=f"'{name}'"), "",
               *_diff_table(rows, "reference"), ""]
    return md


def _check_vs(cfg, vs: tuple[str, ...], out: Path) -> None:
    names = [m.name for m in cfg.methods]
    for name in vs:
        if name not in names:
            raise EndopatError(f"--vs '{name}': no such method in {out / 'study.json'} (the methods: "
                               + ", ".join(names) + ")")


def _ab_histograms(out: Path, cfg, rep: Path) -> Path | None:
    """Fig. 4: the a/b histograms the pretraining stages saved, one curve per unlabeled source."""
    hists = {}
    for name in cfg.unlabeled:
        p = out / "stages" / "pretrain" / name / "ab_histogram.json"
        try:
            hists[name] = colour.ABHistogram.load(p)
        except EndopatError:  # not pretrained yet, or a damaged file: that source's curve is left out
            continue
    return plot_ab_histograms(hists, rep / "ab_histograms.png") if hists else None


def write_study_report(out: str | Path, cfg, data, vs: tuple[str, ...] = ()) -> Path:
    """Write ``RUN/report/``; ``vs`` names methods to compare every method against as well (their
    tables follow the baseline's)."""

    out = Path(out)
    _check_vs(cfg, vs, out)
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
    comparison = Comparison(cells, cfg.baseline, cfg.seed, pool=len(data.split.train))
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
    sel_diff, sel_sav = _selection_rows(cells, cfg, summ, comparison)
    if sel_diff:
        write_csv(sel_diff, rep / "selection.csv", ["vs", *STATS_FIELDS])
        write_csv(sel_sav, rep / "selection_savings.csv", ["vs", *SAVINGS_FIELDS])
    curves = plot_curves(summ, rep / "curves.png") if summ else None
    hist_png = _ab_histograms(out, cfg, rep)
    try:
        overlays = plot_overlays(cells, data, cfg.overlays, rep / "overlays.png", order)
    except Exception as err:  # a figure must not lose the tables; say why it is missing
        overlays = None
        atomic_write_text(rep / "overlays.error.txt", f"{err.__class__.__name__}: {err}\n")
    grid = grid_cells(cfg, data.split)
    total = len(grid)
    tasks = task_figures(out, cfg, rep)

    planned = Counter(c.method.name for c in grid)
    kinds = {m.name: "semi-supervised" if m.semi is not None else "supervised" for m in cfg.methods}
    cost = compute.compute_rows(out, cells, order, planned, kinds)
    write_csv(cost, rep / "compute.csv", ["what", "runs", "planned", "seconds", "hours", "minutes_per_run",
                                                 "hours_to_come"])
    vs_md = _vs_sections(comparison, cfg, tuple(vs), rep, order) if cells else []
    class_md, class_html = report_classes.section(cells, data.labels, cfg, len(data.split.train), order,
                                                  summaries, rep)
    pairs = pair_likeness(out, cfg)
    semi = unlabeled.write(cells, [m.name for m in cfg.methods if m.semi is not None], rep / "unlabeled.csv")
    atomic_write_text(rep / "report.md", _markdown(cfg, data, len(cells), total, table, sav, pst, tasks, sel_diff,
                                                   sel_sav, no_sav, compute.markdown(cost, cells), vs_md,
                                                   class_md, pairs, unlabeled.markdown(semi)))
    atomic_write_text(rep / "report.html", page(cfg, data, len(cells), total, table, sav, pst, tasks,
                                                 curves, hist_png, overlays, no_sav, cost, class_html + unlabeled_section(semi),
                                                 pairs))
    return rep / "report.md"
