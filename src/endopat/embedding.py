"""What a frame looks like to a checkpoint: pooled multi-level encoder features (every encoder
level averaged over space and L2-normalised, the levels concatenated and normalised again), a
segmenter's uncertainty (entropy and variance over flipped views), and the 8x8 Lab thumbnail used
without a checkpoint. ``endopat suggest`` and a study's ``selection`` embed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from endopat.checkpoints import load_checkpoint
from endopat.colour import rgb_uint8_to_lab_n
from endopat.data.geometry import fit_image
from endopat.errors import reading
from endopat.labels import BINARY
from endopat.networks import arch_of, build_unet
from endopat.segmenter import network_input


class Embedder:
    """Pooled multi-level encoder features of a checkpoint (see the module docstring), and for a
    segmenter the uncertainty of its prediction."""

    def __init__(self, path: str | Path | None, device: str = "cpu"):
        self.device = torch.device(device)
        self.net, self.kind, self.labels, self.threshold = None, None, BINARY, 0.5
        if path is None:
            return
        ckpt = load_checkpoint(path)
        self.kind, self.cfg, self.labels, self.threshold = ckpt.kind, ckpt.model, ckpt.labels, ckpt.threshold
        self.in_channels = ckpt.in_channels
        last = arch_of(self.cfg).groups["last"][0] + "."
        with reading(path, "endopat checkpoint"):  # weights that do not fit its own model: one line
            out = next(v for k, v in ckpt.state_dict.items() if k.startswith(last) and k.endswith("weight")).shape[0]
            self.net = build_unet(self.cfg, in_channels=self.in_channels, out_channels=out)
            self.net.load_state_dict(ckpt.state_dict)
        self.net.to(self.device).eval()

    @property
    def segmenter(self) -> bool:
        return self.kind == "segmenter"

    def _input(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """The network input as evaluation makes it, in the channels this network was built for (a
        generator sees L even when its config's segmenter input is Lab)."""

        cfg = self.cfg.model_copy(update={"input": "L" if self.in_channels == 1 else "Lab"})
        return network_input(cfg, frames).to(self.device)

    @torch.no_grad()
    def embed(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if self.net is None:
            return thumbnail_embedding(frames)
        levels = arch_of(self.cfg).levels(self.net, self._input(frames))
        parts = [torch.nn.functional.normalize(f.float().mean(dim=(2, 3)), dim=1) for f in levels]
        return torch.nn.functional.normalize(torch.cat(parts, 1), dim=1).cpu().numpy()

    @torch.no_grad()
    def uncertainty(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(uncertainty score, probability maps at network size) per frame: a binary model's
        foreground probability ``(B, H, W)``, a multi-class model's ``(B, C, H, W)``. The score is the
        mean predictive entropy over the flipped views' mean (in units of log C: 0 certain, 1 uniform)
        plus the views' variance (summed over classes; binary: the foreground's)."""
        x = self._input(frames)
        views = []
        for dims in ((), (3,), (2,), (2, 3)):  # identity, horizontal, vertical, both flips
            xv = x.flip(dims) if dims else x
            p = torch.softmax(self.net(xv).float(), 1)
            if self.labels.is_binary:
                p = p[:, 1]
            back = [d - 1 for d in dims] if self.labels.is_binary else list(dims)  # the channel axis dropped or not
            views.append(p.flip(back) if dims else p)
        p = torch.stack(views)  # (4, B, H, W) or (4, B, C, H, W)
        if self.labels.is_binary:
            mean = p.mean(0).clamp(1e-6, 1 - 1e-6)
            entropy = -(mean * mean.log2() + (1 - mean) * (1 - mean).log2())  # bits, in [0, 1]
            score = entropy.mean(dim=(1, 2)) + p.var(0, unbiased=False).mean(dim=(1, 2))
            return score.cpu().numpy(), mean.cpu().numpy()
        mean = p.mean(0)
        entropy = -(mean * mean.clamp(min=1e-6).log()).sum(1) / np.log(mean.shape[1])  # (B, H, W) in [0, 1]
        score = entropy.mean(dim=(1, 2)) + p.var(0, unbiased=False).sum(1).mean(dim=(1, 2))
        return score.cpu().numpy(), mean.cpu().numpy()


def thumbnail_embedding(frames: Sequence[np.ndarray]) -> np.ndarray:
    """No model: the 8x8 normalised-Lab thumbnail of each frame, flattened (colour layout only)."""

    small = np.stack([fit_image(f, (8, 8), "stretch") for f in frames])
    return rgb_uint8_to_lab_n(torch.from_numpy(small)).flatten(1).numpy()
