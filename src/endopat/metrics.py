"""Segmentation scores, defined once: per-image, per-class Dice and IoU (MONAI's metrics) and the
headline mean.

Rules (docs/method.md, "Scores"): pixels of the ignore id count for neither prediction nor truth; a
class absent from both the prediction and the truth of an image has no score there (NaN, left out of
every mean); present in only one of them it scores 0. An image's headline is the mean over its
scored foreground classes (every class but the background), and 1 when no foreground class is in
either (nothing to find, nothing found) — for a binary model exactly the instrument Dice with MONAI's
``ignore_empty=False``. Averaged over images, the headline IoU of a class-scored layout is the
EndoVis 2017 challenge's IoU (per frame, the mean over the classes present in the prediction or the
truth, then the mean over frames).
"""

from __future__ import annotations

import torch

from endopat.labels import Labels


def dice_iou(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Dice and IoU of boolean masks ``(B, H, W)`` (MONAI, ``ignore_empty=False``: both
    empty = 1, one empty = 0)."""
    from monai.metrics import (  # heavy: imported when a network or metric is needed
        compute_dice,
        compute_iou,
    )

    p = pred[:, None].float()
    g = gt[:, None].float()
    dice = compute_dice(p, g, include_background=True, ignore_empty=False)[:, 0]
    iou = compute_iou(p, g, include_background=True, ignore_empty=False)[:, 0]
    return dice, iou


def class_dice_iou(pred: torch.Tensor, gt: torch.Tensor, labels: Labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-class Dice and IoU ``(B, C)`` of class-id masks ``(B, H, W)``; NaN for a class
    absent from both (ignore-id pixels left out)."""
    from monai.metrics import compute_dice, compute_iou

    c = labels.num_classes
    scored = (gt != labels.ignore) if labels.ignore is not None else torch.ones_like(gt, dtype=torch.bool)
    onehot = lambda ids: (torch.nn.functional.one_hot(ids.long().clamp(max=c - 1), c).permute(0, 3, 1, 2)  # noqa: E731
                          * scored[:, None]).float()
    p, g = onehot(pred), onehot(gt)
    dice = compute_dice(p, g, include_background=True, ignore_empty=False)
    iou = compute_iou(p, g, include_background=True, ignore_empty=False)
    absent = (p.sum((2, 3)) + g.sum((2, 3))) == 0
    return dice.masked_fill(absent, float("nan")), iou.masked_fill(absent, float("nan"))


def headline(scores: torch.Tensor, labels: Labels) -> torch.Tensor:
    """``(B, C)`` per-class scores -> ``(B,)``: the mean over scored foreground classes, 1 where none is."""
    fg = scores[:, 1:]
    return torch.where(fg.isnan().all(1), torch.ones_like(fg[:, 0]), fg.nanmean(1))


def image_scores(pred: torch.Tensor, gt: torch.Tensor, labels: Labels) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor, torch.Tensor]:
    """Headline Dice and IoU ``(B,)`` and per-class Dice and IoU ``(B, C)`` of class-id masks."""
    dice, iou = class_dice_iou(pred, gt, labels)
    if labels.is_binary:  # MONAI on the instrument mask itself (endopat's binary scores, bit for bit)
        scored = (gt != labels.ignore) if labels.ignore is not None else torch.ones_like(gt, dtype=torch.bool)
        d, i = dice_iou((pred == 1) & scored, (gt == 1) & scored)
        return d, i, dice, iou
    return headline(dice, labels), headline(iou, labels), dice, iou
