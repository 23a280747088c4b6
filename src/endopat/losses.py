"""The losses of the paper's section 2.2, as pure functions of tensors.

Shapes: discriminator outputs ``(B, 1)`` in [0, 1]; a/b tensors ``(B, 2, H, W)`` normalised to
[-1, 1] (see :mod:`endopat.colour`); rebalancing weights ``P`` the same shape as the a/b tensors.
Every per-image quantity is averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

REAL = 1.0
FAKE = 0.0


def lsgan_generator(d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 2, L1 = 1/n sum_i ||D(I_hat_i) - Y_real||^2: the generator wants fakes judged real."""
    return ((d_fake - REAL) ** 2).flatten(1).sum(1).mean()


def rebalanced_l2(ab_pred: torch.Tensor, ab_true: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 3, L2 = 2/(h w) sum_{c in a,b} sum_{h,w} ||(I_hat^c - I^c) * P^c||^2."""
    h, w = ab_true.shape[-2:]
    per_image = (((ab_pred - ab_true) * weights) ** 2).sum(dim=(1, 2, 3))
    return (2.0 / (h * w) * per_image).mean()


def l2(ab_pred: torch.Tensor, ab_true: torch.Tensor) -> torch.Tensor:
    """Eq. 4, L3 = 1/(h w) sum_{h,w} ||I_hat_{h,w} - I_{h,w}||^2 (L is shared, so only a/b differ)."""
    h, w = ab_true.shape[-2:]
    per_image = ((ab_pred - ab_true) ** 2).sum(dim=(1, 2, 3))
    return (per_image / (h * w)).mean()


def discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 5, L_D = MSE(D(I), Y_real=1) + MSE(D(I_hat), Y_fake=0)."""
    return F.mse_loss(d_real, torch.full_like(d_real, REAL)) + F.mse_loss(
        d_fake, torch.full_like(d_fake, FAKE)
    )


@dataclass(frozen=True)
class GeneratorLoss:
    """Eq. 1, L_G = gamma * L1 + lambda * L2 + phi * L3, keeping each term for logging."""

    total: torch.Tensor
    gan: torch.Tensor
    rebalanced: torch.Tensor
    l2: torch.Tensor


def generator(
    d_fake: torch.Tensor,
    ab_pred: torch.Tensor,
    ab_true: torch.Tensor,
    weights: torch.Tensor,
    gamma: float,
    lam: float,
    phi: float,
) -> GeneratorLoss:
    gan = lsgan_generator(d_fake)
    reb = rebalanced_l2(ab_pred, ab_true, weights)
    plain = l2(ab_pred, ab_true)
    return GeneratorLoss(gamma * gan + lam * reb + phi * plain, gan, reb, plain)


def segmentation(logits: torch.Tensor, mask: torch.Tensor, per_image: bool = False,
                 ignore: int | None = None) -> torch.Tensor:
    """Eq. 6: cross-entropy over the classes (PyTorch's CE; the paper's two: {background, instrument}).

    ``logits`` ``(B, C, H, W)``, ``mask`` ``(B, H, W)`` class ids (long, uint8 or bool); pixels of
    ``ignore`` count for nothing. The mean over every scored pixel of the batch, or with ``per_image``
    each image's mean ``(B,)`` (validation sums these).
    """
    target = mask.long()
    if ignore is None:
        if per_image:
            return F.cross_entropy(logits, target, reduction="none").mean((1, 2))
        return F.cross_entropy(logits, target)
    if per_image:
        scored = (target != ignore).float()
        per_pixel = F.cross_entropy(logits, target, reduction="none", ignore_index=ignore)
        return per_pixel.sum((1, 2)) / scored.sum((1, 2)).clamp(min=1)
    return F.cross_entropy(logits, target, ignore_index=ignore)


def dice(logits: torch.Tensor, mask: torch.Tensor, ignore: int | None = None) -> torch.Tensor:
    """MONAI's soft Dice loss over every class (``DiceLoss(batch=True)`` on the softmax and the
    one-hot target, pooled over the batch), ignore-id pixels left out of both."""
    from monai.losses import DiceLoss  # heavy: imported when the loss is used

    c = logits.shape[1]
    target = mask.long()
    scored = ((target != ignore) if ignore is not None else torch.ones_like(target, dtype=torch.bool))[:, None]
    onehot = F.one_hot(target.clamp(max=c - 1), c).permute(0, 3, 1, 2) * scored
    return DiceLoss(batch=True)(torch.softmax(logits, 1) * scored, onehot.float())


def supervised(logits: torch.Tensor, mask: torch.Tensor, kind: str = "ce", ignore: int | None = None,
               per_image: bool = False) -> torch.Tensor:
    """Fine-tuning's loss: ``ce`` (:func:`segmentation`) or ``dice_ce`` (that plus :func:`dice`, as
    MONAI's ``DiceCELoss`` sums them); ``per_image`` (validation) is the cross-entropy alone."""
    ce = segmentation(logits, mask, per_image=per_image, ignore=ignore)
    return ce + dice(logits, mask, ignore) if kind == "dice_ce" and not per_image else ce


def masked_reconstruction(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor,
                          kind: str = "l1") -> torch.Tensor:
    """Masked image modelling (SimMIM, MAE): the mean L1 (or squared) error over the hidden pixels.

    ``pred``, ``target`` ``(B, C, H, W)``; ``hidden`` ``(B, 1, H, W)`` with 1 where the input was
    hidden. Visible pixels do not count (the network could copy them).
    """
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    hidden = hidden.expand_as(err)
    return (err * hidden).sum() / hidden.sum().clamp(min=1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020): ``z1[i]`` and ``z2[i]`` are two views of one sample, every
    other embedding of the batch a negative; cosine similarity / temperature, cross-entropy, averaged
    over the 2B anchors. pytorch-metric-learning's ``NTXentLoss``, with each pair its own label."""
    from pytorch_metric_learning.losses import (
        NTXentLoss,  # heavy: imported when the contrastive loss is built
    )

    labels = torch.arange(len(z1), device=z1.device)
    return NTXentLoss(temperature=temperature)(torch.cat([z1, z2]), torch.cat([labels, labels]))


def consistency(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Teacher's consistency cost: the mean squared difference between the student's class
    probabilities (softmax of ``logits`` (B, C, H, W)) and the teacher's ``target`` probabilities
    (Tarvainen & Valpola 2017). Zero when they agree."""
    return F.mse_loss(torch.softmax(logits, dim=1), target)


def pseudo_label(logits: torch.Tensor, target: torch.Tensor, threshold: float) -> torch.Tensor:
    """FixMatch's unlabeled loss: cross-entropy of ``logits`` against the teacher's arg-max class
    where its probability ``target`` (B, C, H, W) reaches ``threshold``, averaged over all pixels
    (a pixel below the threshold counts as 0, as in FixMatch); 0 when no pixel is confident."""
    confidence, label = target.max(dim=1)
    keep = (confidence >= threshold).float()
    return (F.cross_entropy(logits, label, reduction="none") * keep).mean()
