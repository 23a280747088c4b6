"""How much a semi-supervised row's unlabeled frames weighed in the weights it kept: the unlabeled
term's share of the training loss at the epoch each run kept (:mod:`endopat.best_epoch`), read from
the run's ``history.csv`` (``cells/<row>/<cell>/run/history.csv``; the ``unlabeled_loss`` column is
the term as weighted into ``train_loss``).

A share of a few percent says the kept weights were shaped almost wholly by the labels, whatever the
method: a reason a semi-supervised row scores as the baseline does, which its Dice alone cannot give.
A run whose history is missing or damaged is counted as not read; it does not stop the report."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from endopat.best_epoch import kept
from endopat.data.splits import parse_fraction
from endopat.report.tables import write_csv

FIELDS = ["method", "fraction", "runs", "read", "share_median", "share_min", "share_max", "epoch_median",
          "epochs_median"]
TEXT = ("The unlabeled term's share of the training loss (`unlabeled_loss / train_loss` in each run's "
        "history.csv) at the epoch the run kept (its best validation loss), over the row's runs at each "
        "count: a share of a few percent says the kept weights were shaped almost wholly by the labels. "
        "Kept epoch and epochs run: medians over the runs read.")


def kept_share(history: Path) -> tuple[float, int, int] | None:
    """(share, kept epoch, epochs run) of one run; ``None`` when its history is missing, damaged,
    not semi-supervised, or its kept epoch's training loss is not positive."""
    try:
        with open(history, newline="") as fh:
            rows = list(csv.DictReader(fh))
        losses = [float(r["val_loss"]) for r in rows]
        k = kept(losses)
        if k is None:
            return None
        unlabeled, train = float(rows[k]["unlabeled_loss"]), float(rows[k]["train_loss"])
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError):
        return None  # not there, not a history, or a column that is not a number
    share = unlabeled / train if train > 0 else math.nan
    return (share, k + 1, len(rows)) if math.isfinite(share) else None  # epochs count from 1


def shares(cells: Iterable[dict], semi_methods: Iterable[str]) -> list[dict]:
    """One row per semi-supervised method and fraction (in ``semi_methods``' order, the most labels
    first): runs, runs read, and the median, least and most share over them, with the median kept
    epoch and epochs run."""
    wanted, groups = list(semi_methods), defaultdict(list)
    for c in cells:
        if c["method"] in wanted:
            groups[(c["method"], c["fraction"])].append(kept_share(Path(c["folder"]) / "run" / "history.csv"))
    rows = []
    for (method, fraction), got in sorted(groups.items(), key=lambda kv: (wanted.index(kv[0][0]),
                                                                          -parse_fraction(kv[0][1]))):
        read = [g for g in got if g is not None]
        s = [g[0] for g in read]
        rows.append({"method": method, "fraction": fraction, "runs": len(got), "read": len(read),
                     "share_median": statistics.median(s) if s else None, "share_min": min(s, default=None),
                     "share_max": max(s, default=None),
                     "epoch_median": statistics.median(g[1] for g in read) if read else None,
                     "epochs_median": statistics.median(g[2] for g in read) if read else None})
    return rows


def write(cells: Iterable[dict], semi_methods: Iterable[str], path: Path) -> list[dict]:
    """:func:`shares`, written to ``path`` as CSV when there are any."""
    rows = shares(cells, semi_methods)
    if rows:
        write_csv(rows, path, FIELDS)
    return rows


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def text_rows(rows: list[dict]) -> list[dict]:
    """The rows as the report shows them: shares as percentages to one decimal."""
    return [dict(r, share=_pct(r["share_median"]), share_range=f"{_pct(r['share_min'])} - {_pct(r['share_max'])}",
                 epoch=f"{r['epoch_median']:g} of {r['epochs_median']:g}" if r["read"] else "-") for r in rows]


def markdown(rows: list[dict]) -> list[str]:
    """report.md's section (none without semi-supervised rows)."""
    if not rows:
        return []
    return ["## The unlabeled term (semi-supervised rows)", "", TEXT, "",
            "| method | fraction | runs read | share at the kept epoch (median) | least - most | kept epoch of run |",
            "|---|---|---:|---:|---|---|",
            *(f"| {r['method']} | {r['fraction']} | {r['read']} of {r['runs']} | {r['share']} | {r['share_range']} "
              f"| {r['epoch']} |" for r in text_rows(rows)), ""]
