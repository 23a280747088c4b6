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


def segmentation(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 6: cross-entropy over the two classes {background, instrument} (PyTorch's CE).

    ``logits`` ``(B, 2, H, W)``, ``mask`` ``(B, H, W)`` with 0/1 (long or bool).
    """
    return F.cross_entropy(logits, mask.long())
