"""Per-image Dice and IoU of a segmenter on labeled data, with summary statistics.

Predictions are made at the network's size and mapped back (the model's ``fit`` rule, bilinear
probabilities, then threshold or arg-max) to each mask's own resolution, so the scores are those of
the original annotation.

The scores and their rules (ignore id, a class absent from both, the headline mean) are
:mod:`endopat.metrics`'. Binary: when neither the ground truth nor the prediction has an instrument
pixel, Dice = IoU = 1 (a correct "no instrument"); when only one of them is empty, Dice = IoU = 0.
A multi-class model's rows add ``dice_<class>`` and ``iou_<class>`` for every class (empty where the
class is absent from both) and ``gt_<class>`` (its share of the scored pixels of the truth: a study's
per-class results read each class on the test images that show it), and the headline ``dice``/``iou``
is the mean over foreground classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from endopat.data.labeled import Sample, load_image, load_mask
from endopat.errors import EndopatError
from endopat.io import atomic_write_csv
from endopat.labels import Labels, common_labels
from endopat.metrics import image_scores
from endopat.segmenter import Segmenter

METRIC_FIELDS = ["id", "group", "dice", "iou", "gt_fraction", "pred_fraction"]


def class_fields(labels: Labels) -> list[str]:
    """The per-class columns of a multi-class model's rows (none for a binary one)."""
    if labels.is_binary:
        return []
    return [f"{m}_{n}" for m in ("dice", "iou", "gt") for n in labels.names]


def evaluate(model: str | Path | Segmenter, samples: Iterable[Sample], batch_size: int = 8,
             device: str = "cpu") -> list[dict]:
    """Per-image rows: id, group, dice, iou, ground-truth and predicted foreground fractions (of the
    scored pixels), and for a multi-class model each class's Dice and IoU. The samples' classes must
    be the model's."""
    seg = model if isinstance(model, Segmenter) else Segmenter(model, device)
    samples = list(samples)
    if not samples:
        raise EndopatError("no samples to evaluate")
    labels = common_labels([seg.labels, *{s.labels for s in samples}], "the model and the labeled data")
    rows = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        images = [load_image(s) for s in chunk]
        masks = [load_mask(s, im.shape[:2]) for s, im in zip(chunk, images)]
        for s, prob, gt in zip(chunk, seg.probabilities(images), masks):
            pred = seg.class_ids(prob)
            d, i, cd, ci = image_scores(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None], labels)
            scored = gt != labels.ignore if labels.ignore is not None else np.ones(gt.shape, bool)
            row = {"id": s.id, "group": s.group, "dice": float(d[0]), "iou": float(i[0]),
                   "gt_fraction": float((gt > 0)[scored].mean()) if scored.any() else 0.0,
                   "pred_fraction": float(torch.from_numpy(pred > 0)[torch.from_numpy(scored)].float().mean())
                   if scored.any() else 0.0}
            if not labels.is_binary:
                share = np.bincount(gt[scored], minlength=labels.num_classes)[: labels.num_classes] / max(1, scored.sum())
                for name, value in zip(class_fields(labels), [*cd[0].tolist(), *ci[0].tolist(), *share.tolist()]):
                    row[name] = None if np.isnan(value) else value
            rows.append(row)
    return rows


def summarize(rows: Sequence[dict], keys: Sequence[str] = ("dice", "iou")) -> dict[str, dict[str, float]]:
    """Mean, median, first and third quartile (the IQR bounds) and count per metric."""
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if r.get(k) is not None], dtype=float)
        if not len(v):
            continue
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        out[k] = {"mean": float(v.mean()), "median": float(med), "q1": float(q1), "q3": float(q3),
                  "n": int(len(v))}
    return out


def class_rows(rows: Sequence[dict], name: str) -> list[dict]:
    """The rows of the images whose ground truth shows class ``name`` (``gt_<name>`` > 0), each with
    that class's Dice and IoU as its ``dice``/``iou`` (elsewhere a class's Dice is 0 or undefined
    depending on the model's false positives): how a class is read in summaries and studies."""
    return [dict(r, dice=float(r[f"dice_{name}"]), iou=float(r[f"iou_{name}"])) for r in rows
            if r.get(f"gt_{name}") not in (None, "") and float(r[f"gt_{name}"]) > 0]


def class_summaries(rows: Sequence[dict], names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`summarize` of each class's :func:`class_rows` (classes no image shows left out)."""
    out = {}
    for name in names:
        mine = class_rows(rows, name)
        if mine:
            out[name] = summarize(mine)
    return out


def write_metrics_csv(rows: Sequence[dict], path: str | Path) -> Path:
    extra = [k for k in (rows[0] if rows else {}) if k not in METRIC_FIELDS]
    atomic_write_csv(path, METRIC_FIELDS + extra, rows)
    return Path(path)
