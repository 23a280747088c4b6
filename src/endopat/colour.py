"""CIE L*a*b* colour space, a/b histograms and the colour-rebalancing weights of eq. 3.

Conventions
-----------
* RGB tensors are float in [0, 1], shape ``(B, 3, H, W)``; conversion uses kornia (D65, 2 deg).
* Networks see normalised Lab: ``L_n = L / 50 - 1`` and ``ab_n = ab / 128``, both within [-1, 1].
* Histograms use a grid size of 1 Lab unit per channel: bin ``k`` holds values in
  ``[k - 128, k - 127)``, ``k = 0..255`` (values outside are clamped into the end bins).

Rebalancing weights (eq. 3)
---------------------------
The paper calls ``P`` "the relative colour frequency" but asks it to give "a high penalty of wrong
values in image regions with rare values", and cites Zhang et al. (colorful image colorization) for
it. We therefore use Zhang et al.'s mapping, per channel c in {a, b} and value bin v::

    w_c(v) = 1 / ((1 - alpha) * p_c(v) + alpha / Q_c)        P_c(v) = w_c(v) / max_v w_c(v)
                                                                 = 1 / (1 + (1 - alpha) / alpha * Q_c * p_c(v))

with ``p_c`` the empirical relative frequency of the data, ``Q_c`` the number of occupied bins and
``alpha = 0.5`` (Zhang's value). The maximum of ``w`` is reached by a value never seen (p = 0), so
``P`` is 1 for the rarest colours and falls towards 0 for the most frequent ones; keeping ``P`` in
(0, 1] is what bounds eq. 3 to a known range so that its weight lambda can put it in [0, 1]. Mixing
with the uniform distribution (alpha) keeps the weights of frequent values from vanishing
altogether.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import BaseModel, Field

from endopat.errors import EndopatError
from endopat.io import atomic_write_text, read_record

N_BINS = 256
AB_OFFSET = 128
AB_SCALE = 128.0


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    import kornia.color  # heavy: imported when used

    return kornia.color.rgb_to_lab(rgb.clamp(0.0, 1.0))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    import kornia.color  # heavy: imported when used

    return kornia.color.lab_to_rgb(lab, clip=True)


def normalize_lab(lab: torch.Tensor) -> torch.Tensor:
    """Lab (L in [0, 100], a/b in about [-128, 127]) -> network range, each channel in [-1, 1]."""
    L = lab[:, :1] / 50.0 - 1.0
    ab = lab[:, 1:] / AB_SCALE
    return torch.cat([L, ab], dim=1)


def denormalize_lab(lab_n: torch.Tensor) -> torch.Tensor:
    L = (lab_n[:, :1] + 1.0) * 50.0
    ab = lab_n[:, 1:] * AB_SCALE
    return torch.cat([L, ab], dim=1)


# sRGB -> linear for each of the 256 uint8 values (kornia's formula, in float64 then rounded)
_K = np.arange(256) / 255.0
_SRGB_LINEAR = torch.tensor(np.where(_K > 0.04045, ((_K + 0.055) / 1.055) ** 2.4, _K / 12.92), dtype=torch.float32)
# linear RGB -> XYZ (D65) divided by the reference white, as one 1x1 convolution
_RGB_XYZ = (torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
            / torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)[:, None]).float()[:, :, None, None]
# f(X), f(Y), f(Z) -> normalised L, a, b (L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz), then / 50 - 1
# and / 128), also one 1x1 convolution with a bias
_F_LAB_N = torch.tensor([[0.0, 116 / 50, 0.0], [500 / AB_SCALE, -500 / AB_SCALE, 0.0],
                         [0.0, 200 / AB_SCALE, -200 / AB_SCALE]])[:, :, None, None]
_F_LAB_N_BIAS = torch.tensor([-16 / 50 - 1.0, 0.0, 0.0])


def rgb_uint8_to_lab_n(images: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` or ``(B, 3, H, W)`` uint8 RGB -> normalised Lab ``(B, 3, H, W)`` float.

    The same arithmetic as kornia's ``rgb_to_lab`` (to ~1e-6), arranged for uint8 input: the sRGB
    curve is a 256-entry table, and the two linear steps are 1x1 convolutions. 2-3x faster on a CPU
    (it is the largest preprocessing cost of ``predict``; bench/predict.py).
    """
    if not (images.shape[-1] == 3 and images.shape[1] != 3):
        images = images.permute(0, 2, 3, 1)
    # work channels-last in memory (B, H, W, 3) seen as (B, 3, H, W): 1x1 convolutions over three
    # channels are ~10x faster in that layout on a CPU
    dev = images.device
    lin = torch.take(_SRGB_LINEAR.to(dev), images.long()).permute(0, 3, 1, 2)
    xyz = torch.nn.functional.conv2d(lin, _RGB_XYZ.to(dev))
    f = xyz.clamp(min=0.008856).pow_(1 / 3.0)
    dark = xyz <= 0.008856  # the linear segment of f, near black
    if bool(dark.any()):
        f = torch.where(dark, 7.787 * xyz + 4.0 / 29.0, f)
    out = torch.nn.functional.conv2d(f, _F_LAB_N.to(dev), _F_LAB_N_BIAS.to(dev))
    return out.contiguous()


def lab_n_to_rgb(lab_n: torch.Tensor) -> torch.Tensor:
    return lab_to_rgb(denormalize_lab(lab_n))


def ab_bins(ab: torch.Tensor) -> torch.Tensor:
    """Un-normalised a/b values -> integer bin index in [0, 255] (grid size 1)."""
    return (torch.floor(ab) + AB_OFFSET).clamp(0, N_BINS - 1).long()


@dataclass
class ABHistogram:
    """Counts of a and b values over a dataset, one 256-bin histogram per channel (grid size 1)."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros((2, N_BINS), dtype=np.int64))

    def update(self, lab: torch.Tensor) -> "ABHistogram":
        """Add the pixels of un-normalised Lab images ``(B, 3, H, W)``."""
        bins = ab_bins(lab[:, 1:3])
        for c in range(2):
            self.counts[c] += torch.bincount(bins[:, c].reshape(-1), minlength=N_BINS).numpy()
        return self

    def update_mask(self, lab: torch.Tensor, valid: torch.Tensor) -> "ABHistogram":
        """Like :meth:`update`, counting only pixels where ``valid`` ``(B, H, W)`` is true."""
        bins = ab_bins(lab[:, 1:3])
        for c in range(2):
            self.counts[c] += torch.bincount(bins[:, c][valid], minlength=N_BINS).numpy()
        return self

    @property
    def total(self) -> int:
        return int(self.counts[0].sum())

    def frequencies(self) -> np.ndarray:
        """Relative frequency per channel and bin, ``(2, 256)``, each row summing to 1."""
        totals = self.counts.sum(axis=1, keepdims=True)
        if (totals == 0).any():
            raise ValueError("histogram is empty: no pixels were counted")
        return self.counts / totals

    def weights(self, alpha: float = 0.5) -> np.ndarray:
        """Rebalancing weights ``P`` in (0, 1], ``(2, 256)``; see the module docstring."""
        p = self.frequencies()
        q = np.maximum((self.counts > 0).sum(axis=1, keepdims=True), 1)
        return (1.0 / (1.0 + (1.0 - alpha) / alpha * q * p)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"grid_size": 1, "offset": AB_OFFSET, "counts": self.counts.tolist()}

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "ABHistogram":
        """A saved histogram; a damaged file is one line naming it."""
        counts = np.asarray(read_record(path, "a/b histogram", _SavedHistogram).counts, dtype=np.int64)
        if not counts.any():
            raise EndopatError(f"{path}: not a readable a/b histogram (no pixel counted)")
        return cls(counts)


_Channel = Annotated[list[Annotated[int, Field(ge=0, le=2**62)]], Field(min_length=N_BINS, max_length=N_BINS)]


class _SavedHistogram(BaseModel):
    counts: Annotated[list[_Channel], Field(min_length=2, max_length=2)]  # a and b


def pixel_weights(ab_n: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Look up ``P^c_{h,w}`` for the true colours ``ab_n`` ``(B, 2, H, W)`` (normalised).

    ``weights`` is the ``(2, 256)`` table of :meth:`ABHistogram.weights` as a tensor.
    """
    bins = ab_bins(ab_n * AB_SCALE)
    return torch.stack([weights[c][bins[:, c]] for c in range(2)], dim=1)


def image_grid(rows: list[torch.Tensor]) -> np.ndarray:
    """Normalised Lab batches ``(B, 3, H, W)``, one per row, as an RGB uint8 image: the rows stacked,
    the images of a batch side by side (the tasks' sample figures)."""
    rgb = [lab_n_to_rgb(r.float()).cpu() for r in rows]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rgb], dim=1)  # (3, rows*H, B*W)
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
