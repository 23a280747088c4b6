"""The report's figures as PNG files (matplotlib, Agg backend): a/b histograms (paper Fig. 4), a
study's DSC-against-labels curves (Fig. 5/6) and its example test images (training plots and mask
drawing: :mod:`endopat.drawing`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from endopat.data.labeled import load_image, load_mask
from endopat.data.splits import parse_fraction
from endopat.drawing import class_overlay, overlay, pyplot, save_figure
from endopat.metrics import image_scores
from endopat.segmenter import Segmenter


def plot_ab_histograms(hists: Mapping[str, "object"], path: str | Path) -> Path:
    """Log relative frequency of a and b values per source (the paper's Fig. 4)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    values = np.arange(256) - 128
    for name, hist in hists.items():
        freq = hist.frequencies()
        for c, ax in enumerate(axes):
            f = np.where(freq[c] > 0, freq[c], np.nan)
            ax.plot(values, np.log10(f), label=name, lw=1.2)
    for ax, ch in zip(axes, "ab"):
        ax.set_title(f"{ch} channel")
        ax.set_xlabel(f"{ch}* value (grid size 1)")
        ax.set_xlim(-100, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("log10 relative frequency")
    axes[1].legend(fontsize=8)
    return save_figure(fig, path)


def plot_curves(summ: list[dict], path: Path, what: str = "") -> Path:
    """Mean test DSC against the labeled-set size per method (``what``: e.g. a class, in the title)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_method: dict[str, list[dict]] = defaultdict(list)
    for s in summ:
        by_method[s["method"]].append(s)
    for method, ss in by_method.items():
        ss = sorted(ss, key=lambda s: s["labels"])
        x = [s["labels"] for s in ss]
        y = [s["dice"]["mean"] for s in ss]
        lo = [min(s["run_means"]) for s in ss]
        hi = [max(s["run_means"]) for s in ss]
        line, = ax.plot(x, y, marker="o", label=method)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labeled training images")
    ax.set_ylabel("mean test DSC")
    ax.set_title(f"{what + ': ' if what else ''}DSC against labeled-set size (band: min-max over runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_overlays(cells: list[dict], data, n: int, path: Path, method_order: list[str]) -> Path | None:
    """Test images with ground truth and each method's prediction at the smallest fraction, subset 0."""

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
    preds, labels = {}, picks[0].labels
    for m in methods:
        preds[m] = Segmenter(Path(chosen[m]["folder"]) / "run" / "best.pt").predict_ids(images)
    # binary: the instrument tinted and outlined; multi-class: each class in its colour, one legend
    draw = (lambda im, ids: overlay(im, ids == 1)) if labels.is_binary else (  # noqa: E731
        lambda im, ids: class_overlay(im, ids, labels, legend=False))
    plt = pyplot()
    cols = 1 + len(methods)
    row = 2.2 * images[0].shape[0] / images[0].shape[1] + 0.35  # the frames' own aspect, and a title line
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.2 * cols, row * len(picks) + 0.6), squeeze=False,
                             layout="constrained")
    for i, (im, gt) in enumerate(zip(images, gts)):
        axes[i][0].imshow(draw(im, gt))
        axes[i][0].set_title("ground truth" if i == 0 else "", fontsize=8)
        for j, m in enumerate(methods, start=1):
            d = image_scores(torch.from_numpy(preds[m][i])[None], torch.from_numpy(gt)[None], labels)[0]
            axes[i][j].imshow(draw(im, preds[m][i]))
            axes[i][j].set_title(f"{m}\nDSC {float(d[0]):.2f}" if i == 0 else f"DSC {float(d[0]):.2f}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    if not labels.is_binary:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=np.array(labels.colours[k]) / 255, label=labels.names[k])
                            for k in labels.foreground], loc="outside lower center", ncol=min(4, len(labels.foreground)),
                   fontsize=7, frameon=False)
    fig.suptitle(f"test images, label fraction {smallest}, subset 0", fontsize=9)
    return save_figure(fig, path)
