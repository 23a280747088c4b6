"""The named perturbations of semi-supervised fine-tuning, on a batch of network input (normalised
L or L, a, b), each drawn from a generator the run saves (so a resumed run draws the same)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jitter(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Colour jitter within the endoscope's range: L scaled and shifted by up to +-strength/2, a/b
    shifted by up to +-strength/4 (each image its own draw), clamped to the normalised range."""
    if strength == 0:
        return x
    b = len(x)
    u = (torch.rand((b, 3), generator=g) - 0.5).to(x)
    out = x.clone()
    out[:, :1] = out[:, :1] * (1 + strength * u[:, 0, None, None, None]) + strength * u[:, 1, None, None, None]
    if x.shape[1] == 3:
        out[:, 1:] = out[:, 1:] + 0.5 * strength * u[:, 2, None, None, None]
    return out.clamp(-1, 1)


def blur(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """A Gaussian blur (sigma in [0.1, 2] px, kornia) on each image with probability ``p``."""
    if p == 0:
        return x
    from kornia.filters import gaussian_blur2d

    on = torch.rand(len(x), generator=g) < p
    sigma = 0.1 + 1.9 * torch.rand(len(x), generator=g)
    out = x.clone()
    for i in torch.nonzero(on).flatten().tolist():
        s = float(sigma[i])
        k = 2 * int(3 * s) + 1
        out[i : i + 1] = gaussian_blur2d(x[i : i + 1], (k, k), (s, s), border_type="reflect")
    return out


def cutmix_boxes(x: torch.Tensor, p: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, with probability ``p``, a box (a quarter to a half of each side) to paste from
    a partner image of the batch: ``(mask (B, 1, H, W) bool, partner (B,))``."""
    b, _, h, w = x.shape
    partner = torch.roll(torch.arange(b), 1)
    on = torch.rand(b, generator=g) < p
    sides = 0.25 + 0.25 * torch.rand((b, 2), generator=g)
    corner = torch.rand((b, 2), generator=g)
    mask = torch.zeros((b, 1, h, w), dtype=torch.bool)
    for i in torch.nonzero(on).flatten().tolist():
        bh, bw = max(1, int(sides[i, 0] * h)), max(1, int(sides[i, 1] * w))
        top, left = int(corner[i, 0] * (h - bh)), int(corner[i, 1] * (w - bw))
        mask[i, :, top : top + bh, left : left + bw] = True
    return mask.to(x.device), partner.to(x.device)


def mix(a: torch.Tensor, mask: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """``a`` with each image's box taken from its partner (images or per-pixel targets alike)."""
    return torch.where(mask, a[partner], a)


class FeatureDropout:
    """UniMatch's feature perturbation: while active, channel dropout on a module's output."""

    def __init__(self, module: torch.nn.Module, rate: float):
        self.rate, self.active = rate, False
        module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        if not (self.active and self.rate > 0):
            return output
        if isinstance(output, torch.Tensor):
            return F.dropout2d(output, self.rate, training=True)
        if isinstance(output, (list, tuple)) and output and isinstance(output[-1], torch.Tensor):  # feature levels
            return type(output)([*output[:-1], F.dropout2d(output[-1], self.rate, training=True)])
        return output
