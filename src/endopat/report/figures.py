"""Figures as PNG files (matplotlib, Agg backend): loss curves, a/b histograms (paper Fig. 4), a
study's DSC-against-labels curves (Fig. 5/6) and its example test images."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from endopat.data.labeled import load_image, load_mask
from endopat.data.splits import parse_fraction
from endopat.evaluate import Segmenter, dice_iou
from endopat.io import atomic_path
from endopat.predict import overlay


def _pyplot():
    import matplotlib  # heavy: imported when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: imported when a figure is drawn

    return plt


def _save(fig, path: str | Path) -> Path:

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return Path(path)


def plot_pretrain_losses(rows: Sequence[Mapping[str, float]], path: str | Path,
                         fields: Sequence[str] = ("loss_g", "gan", "rebalanced", "l2", "loss_d")) -> Path:
    """A task's logged scalars against the step (smoothed); re-colorization's in three panels:
    generator terms, weighted totals, and D(real)/D(fake)."""
    if "d_real" not in fields:
        return _plot_task_losses(rows, path, fields)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if rows:
        step = np.array([r["step"] for r in rows])
        k = max(1, len(rows) // 50)

        def smooth(key):
            v = np.array([r[key] for r in rows])
            return np.convolve(v, np.ones(k) / k, mode="valid"), step[k - 1 :]

        for key, label in [("gan", "LSGAN (eq. 2)"), ("rebalanced", "rebalanced L2 (eq. 3)"),
                           ("l2", "L2 (eq. 4)")]:
            v, s = smooth(key)
            axes[0].plot(s, v, label=label)
        axes[0].set_yscale("log")
        v, s = smooth("loss_g")
        axes[1].plot(s, v, label="L_G (eq. 1)")
        v, s = smooth("loss_d")
        axes[1].plot(s, v, label="L_D (eq. 5)")
        for key in ("d_real", "d_fake"):
            v, s = smooth(key)
            axes[2].plot(s, v, label=key.replace("d_", "D(") + ")")
        axes[2].set_ylim(-0.02, 1.02)
    titles = ["generator terms (unweighted)", "weighted totals", "discriminator outputs"]
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_task_losses(rows: Sequence[Mapping[str, float]], path: str | Path, fields: Sequence[str]) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if rows:
        step = np.array([r["step"] for r in rows])
        k = max(1, len(rows) // 50)
        for key in fields:
            v = np.convolve(np.array([r[key] for r in rows]), np.ones(k) / k, mode="valid")
            ax.plot(step[k - 1 :], v, label=key)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_ab_histograms(hists: Mapping[str, "object"], path: str | Path) -> Path:
    """Log relative frequency of a and b values per source (the paper's Fig. 4)."""
    plt = _pyplot()
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
    return _save(fig, path)


def plot_finetune_history(rows: Sequence[Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if rows:
        ep = [r["epoch"] for r in rows]
        ax.plot(ep, [r["train_loss"] for r in rows], label="train loss")
        ax.plot(ep, [r["val_loss"] for r in rows], label="val loss")
        ax2 = ax.twinx()
        ax2.plot(ep, [r["val_dice"] for r in rows], color="tab:green", label="val Dice")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("val Dice")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_curves(summ: list[dict], path: Path) -> Path:
    plt = _pyplot()
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
    ax.set_title("DSC against labeled-set size (band: min-max over runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


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
