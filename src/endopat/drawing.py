"""Drawing, in one place for the training loops, ``predict`` and the report: masks on frames
(binary tint and outline; class colours with a legend) and training plots (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from endopat.io import atomic_path
from endopat.labels import Labels

TINT = np.array([0, 255, 120], dtype=np.float32)  # instrument tint (green-cyan: absent in tissue)
OUTLINE = np.array([255, 255, 0], dtype=np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask (mask minus its 4-neighbour erosion)."""
    m = np.pad(mask, 1, constant_values=False)
    eroded = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~eroded


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The frame with instrument pixels tinted and outlined (only masked pixels are blended)."""
    out = frame.copy()
    out[mask] = ((1 - alpha) * out[mask] + alpha * TINT).astype(np.uint8)
    out[outline(mask)] = OUTLINE
    return out


def class_overlay(frame: np.ndarray, ids: np.ndarray, labels: Labels, alpha: float = 0.45,
                  legend: bool = True) -> np.ndarray:
    """The frame with each foreground class tinted in its colour and outlined, and a legend of the
    classes present (top left)."""
    out = frame.copy()
    colours = labels.palette().astype(np.float32)
    fg = (ids > 0) & (ids < labels.num_classes)
    out[fg] = ((1 - alpha) * out[fg] + alpha * colours[ids[fg]]).astype(np.uint8)
    for i in labels.foreground:
        edge = outline(ids == i)
        out[edge] = labels.colours[i]
    if legend:
        out = draw_legend(out, labels, [i for i in labels.foreground if (ids == i).any()])
    return out


def draw_legend(image: np.ndarray, labels: Labels, ids: Sequence[int]) -> np.ndarray:
    """A legend of the classes ``ids`` (a colour swatch and the name each) drawn on ``image``."""
    from PIL import Image, ImageDraw

    if not ids:
        return image
    pic = Image.fromarray(image)
    draw = ImageDraw.Draw(pic)
    line = max(12, image.shape[0] // 40)
    width = line * (2 + max(len(labels.names[i]) for i in ids) * 0.6)
    draw.rectangle([2, 2, 6 + width, 6 + line * len(ids)], fill=(0, 0, 0))
    for k, i in enumerate(ids):
        top = 4 + k * line
        draw.rectangle([4, top + 1, 4 + line - 3, top + line - 2], fill=tuple(labels.colours[i]))
        draw.text((6 + line, top), labels.names[i], fill=(255, 255, 255))
    return np.asarray(pic)


def pyplot():
    import matplotlib  # heavy: imported when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: imported when a figure is drawn

    return plt


def save_figure(fig, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return Path(path)


def plot_pretrain_losses(rows: Sequence[Mapping[str, float]], path: str | Path,
                         fields: Sequence[str] = ("loss_g", "gan", "rebalanced", "l2", "loss_d")) -> Path:
    """A task's logged scalars against the step (smoothed); re-colorization's in three panels:
    generator terms, weighted totals, and D(real)/D(fake)."""
    if "d_real" not in fields:
        return _plot_task_losses(rows, path, fields)
    plt = pyplot()
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
    return save_figure(fig, path)


def _plot_task_losses(rows: Sequence[Mapping[str, float]], path: str | Path, fields: Sequence[str]) -> Path:
    plt = pyplot()
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
    return save_figure(fig, path)


def plot_finetune_history(rows: Sequence[Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if rows:
        ep = [r["epoch"] for r in rows]
        ax.plot(ep, [r["train_loss"] for r in rows], label="train loss")
        ax.plot(ep, [r["val_loss"] for r in rows], label="val loss")
        if rows[-1].get("unlabeled_loss") not in (None, ""):  # semi-supervised: its share of the train loss
            ax.plot(ep, [float(r.get("unlabeled_loss") or "nan") for r in rows], label="of it: unlabeled (weighted)")
        ax2 = ax.twinx()
        ax2.plot(ep, [r["val_dice"] for r in rows], color="tab:green", label="val Dice")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("val Dice")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)
