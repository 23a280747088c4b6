"""Per-image Dice and IoU of a segmenter on labeled data, with summary statistics.

Predictions are made at the network's size and mapped back (the model's ``fit`` rule, bilinear
probabilities, then threshold) to each mask's own resolution, so the scores are those of the
original annotation.

Empty-mask convention (MONAI's ``ignore_empty=False``): when neither the ground truth nor the
prediction has an instrument pixel, Dice = IoU = 1 (a correct "no instrument"); when only one of them
is empty, Dice = IoU = 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from endopat.checkpoints import load_checkpoint, model_config
from endopat.data.geometry import fit_image, fit_images_on, restore
from endopat.data.labeled import Sample, load_image, load_mask
from endopat.errors import EndopatError
from endopat.io import atomic_write_csv
from endopat.networks import build_unet, prepare_input

METRIC_FIELDS = ["id", "group", "dice", "iou", "gt_fraction", "pred_fraction"]


def dice_iou(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Dice and IoU of boolean masks ``(B, H, W)`` (MONAI metrics, empty = see above)."""
    from monai.metrics import (  # heavy: imported when a network or metric is needed
        compute_dice,
        compute_iou,
    )

    p = pred[:, None].float()
    g = gt[:, None].float()
    dice = compute_dice(p, g, include_background=True, ignore_empty=False)[:, 0]
    iou = compute_iou(p, g, include_background=True, ignore_empty=False)[:, 0]
    return dice, iou


class Segmenter:
    """A loaded segmenter checkpoint: ``probabilities(rgb)`` for RGB uint8 images of any size."""

    def __init__(self, path: str | Path, device: str = "cpu", preprocess: str = "auto"):
        """``preprocess``: where frames are fitted and converted to Lab: ``host`` (PIL, numpy),
        ``device`` (on the network's device) or ``auto`` (device on a GPU, host on a CPU)."""
        ckpt = load_checkpoint(path)
        if ckpt["kind"] != "segmenter":
            raise EndopatError(f"{path}: a '{ckpt['kind']}' checkpoint, not a segmenter; fine-tune it first")
        self.cfg = model_config(ckpt)
        self.threshold = float(ckpt.get("threshold", 0.5))
        self.device = torch.device(device)
        self.model = build_unet(self.cfg)
        self.model.load_state_dict(ckpt["state_dict"])
        self.model.to(self.device).eval()
        self.checkpoint = ckpt
        self.on_device = preprocess == "device" or (preprocess == "auto" and self.device.type == "cuda")

    def network_input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images of any size -> the network's input batch, where ``preprocess`` says."""
        return network_input(self.cfg, images, self.device if self.on_device else None)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network input -> foreground probability ``(B, 1, h, w)``."""
        return torch.softmax(self.model(x.to(self.device)).float(), dim=1)[:, 1:2]

    @torch.no_grad()
    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Foreground probability maps at each image's own size."""
        return full_resolution(self.cfg, self.forward(self.network_input(images)), [im.shape[:2] for im in images])


def probabilities(forward, cfg, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Fit RGB images into ``cfg.image_size`` (``cfg.fit``, :mod:`endopat.data.geometry`), run
    ``forward`` on the network input, and map each probability back onto its image's full
    resolution (bilinear). Shared by the PyTorch and ONNX segmenters."""
    return full_resolution(cfg, forward(network_input(cfg, images)), [im.shape[:2] for im in images])


def network_input(cfg, images: Sequence[np.ndarray], device: torch.device | None = None) -> torch.Tensor:
    """RGB uint8 images of any size -> the network's input batch (fitted, Lab, normalised); on
    ``device`` when given (fitted there too: :func:`endopat.data.geometry.fit_images_on`)."""
    size = tuple(cfg.image_size)
    if device is not None:
        return prepare_input(fit_images_on(images, size, cfg.fit, device), cfg.input)
    return prepare_input(torch.from_numpy(np.stack([fit_image(im, size, cfg.fit) for im in images])), cfg.input)


def full_resolution(cfg, prob: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Network-sized probabilities ``(B, 1, H, W)`` -> one ``(h, w)`` map per image, at its size."""
    return [restore(p, hw, cfg.fit)[0].cpu().numpy() for p, hw in zip(prob, shapes)]


def evaluate(model: str | Path | Segmenter, samples: Iterable[Sample], batch_size: int = 8,
             device: str = "cpu") -> list[dict]:
    """Per-image rows: id, group, dice, iou, ground-truth and predicted foreground fractions."""
    seg = model if isinstance(model, Segmenter) else Segmenter(model, device)
    samples = list(samples)
    if not samples:
        raise EndopatError("no samples to evaluate")
    rows = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        images = [load_image(s) for s in chunk]
        masks = [load_mask(s, im.shape[:2]) for s, im in zip(chunk, images)]
        for s, prob, gt in zip(chunk, seg.probabilities(images), masks):
            pred = torch.from_numpy(prob >= seg.threshold)[None]
            d, i = dice_iou(pred, torch.from_numpy(gt)[None])
            rows.append({"id": s.id, "group": s.group, "dice": float(d[0]), "iou": float(i[0]),
                         "gt_fraction": float(gt.mean()), "pred_fraction": float(pred.float().mean())})
    return rows


def summarize(rows: Sequence[dict], keys: Sequence[str] = ("dice", "iou")) -> dict[str, dict[str, float]]:
    """Mean, median, first and third quartile (the IQR bounds) and count per metric."""
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows], dtype=float)
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        out[k] = {"mean": float(v.mean()), "median": float(med), "q1": float(q1), "q3": float(q3),
                  "n": int(len(v))}
    return out


def write_metrics_csv(rows: Sequence[dict], path: str | Path) -> Path:
    atomic_write_csv(path, METRIC_FIELDS, rows)
    return Path(path)
