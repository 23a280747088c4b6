"""Tables in the paper's Table 1 form: per method and label count, DSC and IoU mean (with % change
versus the baseline), median and IQR."""

from __future__ import annotations

from typing import Mapping, Sequence

from endopat.io import atomic_write_csv

TABLE_FIELDS = ["method", "labels", "fraction", "runs", "n_test", "dice_mean", "dice_change_pct", "dice_median",
                "dice_q1", "dice_q3", "iou_mean", "iou_change_pct", "iou_median", "iou_q1", "iou_q3"]


def pct_change(value: float, baseline: float | None) -> float | None:
    if baseline is None or baseline == 0:
        return None
    return 100.0 * (value - baseline) / baseline


def table_rows(summaries: Sequence[Mapping], baseline_method: str = "baseline") -> list[dict]:
    """``summaries``: dicts with method, labels, fraction (optional) and evaluate.summarize() output
    under ``dice``/``iou``. Adds the % change against the baseline at the same label count."""
    base = {(s["labels"]): s for s in summaries if s["method"] == baseline_method}
    rows = []
    for s in summaries:
        b = base.get(s["labels"])
        row = {"method": s["method"], "labels": s["labels"], "fraction": s.get("fraction", ""),
               "n_test": s["dice"]["n"]}
        for m in ("dice", "iou"):
            row[f"{m}_mean"] = s[m]["mean"]
            row[f"{m}_change_pct"] = pct_change(s[m]["mean"], b[m]["mean"] if b else None)
            row[f"{m}_median"] = s[m]["median"]
            row[f"{m}_q1"] = s[m]["q1"]
            row[f"{m}_q3"] = s[m]["q3"]
        rows.append(row)
    return rows


def _fmt_change(v: float | None) -> str:
    return "(-)" if v is None else f"({v:+.0f}%)"


def markdown_table(rows: Sequence[Mapping]) -> str:
    head = ("| method | labels | DSC mean | DSC median | DSC IQR | IoU mean | IoU median | IoU IQR |\n"
            "|---|---:|---:|---:|---|---:|---:|---|\n")
    lines = []
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['labels']} "
            f"| {r['dice_mean']:.3f} {_fmt_change(r['dice_change_pct'])} | {r['dice_median']:.3f} "
            f"| [{r['dice_q1']:.2f} {r['dice_q3']:.2f}] "
            f"| {r['iou_mean']:.3f} {_fmt_change(r['iou_change_pct'])} | {r['iou_median']:.3f} "
            f"| [{r['iou_q1']:.2f} {r['iou_q3']:.2f}] |")
    return head + "\n".join(lines) + "\n"


def write_csv(rows: Sequence[Mapping], path, fields: Sequence[str] = TABLE_FIELDS) -> None:
    atomic_write_csv(path, fields, rows)
