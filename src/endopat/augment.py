"""Label-preserving augmentation of fine-tuning batches, on the device, per sample.

Geometric: horizontal and vertical flips and (square images) quarter turns, applied to image and
mask alike. Photometric: a random gain on the luminance channel (``L_n = L / 50 - 1``), as between
videos with different light levels; a/b channels, when present, are left alone so that the colour
signal the paper relies on is not blurred.

Each sample's transform is drawn from its own generator keyed by (seed, epoch, sample index), not
from a stream shared by the batch: the same sample gets the same transform whether it is trained on
one device or on any rank of a multi-GPU run, so results do not depend on the number of devices.
"""

from __future__ import annotations

import numpy as np
import torch

from endopat.config import AugmentConfig


def _where(flag: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(flag.view(-1, *([1] * (a.dim() - 1))), a, b)


def draws(seed: int, epoch: int, indices: torch.Tensor) -> torch.Tensor:
    """Four uniforms per sample ``(B, 4)`` from generators keyed by (seed, epoch, sample index)."""
    u = [np.random.default_rng((seed, epoch, int(i))).random(4) for i in indices.tolist()]
    return torch.from_numpy(np.array(u, dtype=np.float32).reshape(-1, 4))


def augment_batch(x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig,
                  u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: ``x`` network input ``(B, C, H, W)`` (channel 0 = normalised L), ``y``
    masks ``(B, H, W)``, ``u`` the samples' uniforms ``(B, 4)`` from :func:`draws` (horizontal
    flip, vertical flip, quarter turn, gain). Returns new tensors; the inputs are not modified."""
    u = u.to(x.device)
    if cfg.flips:
        f = u[:, 0] < 0.5
        x, y = _where(f, x.flip(-1), x), _where(f, y.flip(-1), y)
        f = u[:, 1] < 0.5
        x, y = _where(f, x.flip(-2), x), _where(f, y.flip(-2), y)
    if cfg.rotate and x.shape[-1] == x.shape[-2]:
        f = u[:, 2] < 0.5
        x, y = _where(f, x.rot90(1, (-2, -1)), x), _where(f, y.rot90(1, (-2, -1)), y)
    if cfg.gain > 0:
        g = (1 + (u[:, 3] * 2 - 1) * cfg.gain).to(x.dtype)
        L = ((x[:, :1] + 1) * g.view(-1, 1, 1, 1)).clamp(0, 2) - 1
        x = torch.cat([L, x[:, 1:]], dim=1)
    return x, y
