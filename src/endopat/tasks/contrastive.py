"""Contrastive learning of the U-Net's encoder (SimCLR), optionally time-contrastive on video.

Two views of each frame (random resized crop, flips, colour jitter in Lab) go through the U-Net's
encoder (:func:`endopat.networks.encode`), a global average pool and a projection MLP; NT-Xent
(:func:`endopat.losses.nt_xent`, pytorch-metric-learning) pulls the two views of a frame together
and pushes the other frames of the batch away. With ``temporal_window: k`` and a video source, the
second view is of another frame up to ``k`` frames away in the same video (time-contrastive
learning, Sermanet et al., ICRA 2018): what stays the same over a second of surgery, not only over
an augmentation. The decoder is not trained by this task, so fine-tuning re-initialises it and keeps
the encoder.

Defaults: ``temperature 0.1`` (SimCLR's best for NT-Xent with normalised embeddings);
``crop_scale [0.3, 1]`` rather than SimCLR's [0.08, 1], since an 8 % crop of a 128 px frame is
36 px of nearly uniform tissue; colour jitter milder than SimCLR's (which is tuned for ImageNet
classes that do not depend on colour), since instrument segmentation does (docs/method.md: Lab
input doubled the Dice of L input). Reference: Chen et al., "A Simple Framework for Contrastive
Learning of Visual Representations", ICML 2020.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from endopat import colour, losses
from endopat.config import _Strict
from endopat.io import write_png
from endopat.networks import arch_of, bottleneck_channels, encode, prepare_input
from endopat.tasks.base import Task


class ContrastiveSettings(_Strict):
    """The ``pretrain.contrastive`` section."""

    temperature: float = Field(0.1, gt=0)
    projection_dim: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    crop_scale: tuple[float, float] = Field((0.3, 1.0), description="area share of a view's crop")
    flips: bool = True
    brightness: float = Field(0.3, ge=0, description="L offset drawn from +-brightness * 50")
    contrast: float = Field(0.3, ge=0, lt=1, description="L gain drawn from 1 +- contrast")
    saturation: float = Field(0.3, ge=0, lt=1, description="a/b gain drawn from 1 +- saturation")
    hue: float = Field(0.05, ge=0, le=0.5, description="a/b rotation drawn from +- hue turns")
    temporal_window: int = Field(0, ge=0, description="video sources: the second view is a frame up to "
                                 "this many frames away in the same video (0: the same frame)")


def augment_views(lab_n: torch.Tensor, s: ContrastiveSettings) -> torch.Tensor:
    """One random view of each normalised Lab image ``(B, 3, H, W)``: a resized crop of
    ``crop_scale`` of its area (aspect 3/4 to 4/3), flips, and jitter of L (brightness, contrast)
    and of a/b (saturation, hue as a rotation of the a/b plane)."""
    b, dev = lab_n.shape[0], lab_n.device
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, device=dev)  # noqa: E731
    area, aspect = u(*s.crop_scale), torch.exp(u(math.log(3 / 4), math.log(4 / 3)))
    sx, sy = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
    flip_x = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0) if s.flips else torch.ones(b, device=dev)
    flip_y = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0) if s.flips else torch.ones(b, device=dev)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1] = sx * flip_x, sy * flip_y
    theta[:, 0, 2], theta[:, 1, 2] = u(-1, 1) * (1 - sx), u(-1, 1) * (1 - sy)
    grid = F.affine_grid(theta, list(lab_n.shape), align_corners=False)
    view = F.grid_sample(lab_n, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    L, ab = view[:, :1], view[:, 1:]
    L = (L * u(1 - s.contrast, 1 + s.contrast).view(b, 1, 1, 1)
         + u(-s.brightness, s.brightness).view(b, 1, 1, 1)).clamp(-1, 1)
    angle = u(-s.hue, s.hue) * 2 * math.pi
    cos, sin = angle.cos().view(b, 1, 1), angle.sin().view(b, 1, 1)
    gain = u(1 - s.saturation, 1 + s.saturation).view(b, 1, 1)
    a, bb = ab[:, 0], ab[:, 1]
    ab = torch.stack([gain * (cos * a - sin * bb), gain * (sin * a + cos * bb)], dim=1).clamp(-1, 1)
    return torch.cat([L, ab], dim=1)


class PairDataset(torch.utils.data.Dataset):
    """Items ``(2, H, W, 3)``: a frame and its partner, a frame up to ``window`` frames away in the
    same video (``window`` 0, or an image source: the frame itself)."""

    def __init__(self, store: Any, window: int):
        self.store = store
        counts = [s["frames"] for s in store.meta.get("sources", [])] if store.meta.get("kind") == "videos" else []
        self.window = window if counts else 0
        ends = np.cumsum(counts).astype(int)  # each frame's video spans [start, end)
        video = np.searchsorted(ends, np.arange(len(store)), side="right") if counts else None
        self.start = (ends - np.asarray(counts))[video] if counts else None
        self.end = ends[video] if counts else None

    def __len__(self) -> int:
        return len(self.store)

    def partner(self, i: int) -> int:
        if self.window == 0:
            return i
        lo, hi = max(int(self.start[i]), i - self.window), min(int(self.end[i]) - 1, i + self.window)
        return int(torch.randint(lo, hi + 1, ()).item())

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.store[i], self.store[self.partner(i)]]))


class Projector(nn.Module):
    """A 1x1 convolution and ReLU on the bottleneck, global average and max pooling, then SimCLR's
    two-layer projection MLP (with batch norm, as SimCLR's: it removes the component every
    embedding of the batch shares). Why not pool the bottleneck directly: the U-Net's blocks end in
    instance norm + LeakyReLU, so every channel's spatial mean is nearly the same for every image,
    and an average-pooled embedding starts (and largely stays) the same for all frames."""

    def __init__(self, width: int, dim: int):
        super().__init__()
        self.local = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(nn.Linear(2 * width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                                 nn.Linear(width, dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f = self.local(features)
        return self.mlp(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))


class Contrastive(nn.Module):
    """The U-Net's encoder and the projector: input -> embedding ``(B, projection_dim)``."""

    def __init__(self, unet: nn.Module, projector: nn.Module, arch):
        super().__init__()
        self.unet, self.projector, self.arch = unet, projector, arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(encode(self.unet, x, self.arch))


class ContrastiveTask(Task):
    name = "contrastive"
    Settings = ContrastiveSettings
    fields = ["loss", "positive_similarity"]
    reinit = ("decoder",)  # the task trains the encoder only
    reference = "SimCLR (Chen et al. 2020); time-contrastive networks (Sermanet et al. 2018)"
    figure = "row 1: frames; rows 2-3: their nearest neighbours in the embedding"

    def __init__(self, cfg: Any, run: Any, store: Any) -> None:
        super().__init__(cfg, run, store)
        s = self.settings
        self.unet_net = self.build_unet()
        for name in arch_of(cfg.model).modules(["decoder"]):  # takes no part in the loss (DDP
            self.unet_net.get_submodule(name).requires_grad_(False)  # insists every trained weight does)
        self.net = Contrastive(self.unet_net, Projector(bottleneck_channels(cfg.model), s.projection_dim),
                               arch_of(cfg.model))
        self.model, self.opt = run.setup("contrastive", self.net, torch.optim.Adam(
            [p for p in self.net.parameters() if p.requires_grad], lr=s.lr))
        if s.temporal_window and store.meta.get("kind") != "videos":
            run.log("note: contrastive.temporal_window applies to video sources; this one is images, "
                    "so both views come from the same frame")

    def dataset(self, store: Any) -> torch.utils.data.Dataset:
        return PairDataset(store, self.settings.temporal_window)

    def _inputs(self, lab_n: torch.Tensor) -> torch.Tensor:
        return lab_n[:, :1].contiguous() if self.cfg.model.input == "L" else lab_n

    def step(self, pairs: torch.Tensor) -> dict[str, torch.Tensor]:
        s, b = self.settings, pairs.shape[0]
        lab_n = colour.rgb_uint8_to_lab_n(pairs.flatten(0, 1)).view(b, 2, 3, *pairs.shape[2:4])
        views = torch.cat([augment_views(lab_n[:, 0], s), augment_views(lab_n[:, 1], s)])
        z1, z2 = self.model(self._inputs(views)).float().chunk(2)
        loss = losses.nt_xent(z1, z2, s.temperature)
        self.opt.zero_grad(set_to_none=True)
        self.run.fabric.backward(loss)
        self.opt.step()
        return {"loss": loss, "positive_similarity": F.cosine_similarity(z1, z2).mean().detach()}

    @torch.no_grad()
    def embed(self, frames: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Normalised embeddings of RGB uint8 frames ``(N, H, W, 3)`` (no augmentation)."""
        out = [self.net(prepare_input(frames[i : i + batch], self.cfg.model.input).to(self.run.device))
               for i in range(0, len(frames), batch)]
        return F.normalize(torch.cat(out).float(), dim=1)

    @torch.no_grad()
    def samples(self, frames: torch.Tensor, path: Path) -> None:
        """Row 1: the query frames; rows 2-3: their nearest neighbours (cosine, in the embedding)
        among up to 256 frames of the store, the query itself left out."""
        was_training = self.net.training
        self.net.eval()
        idx = np.unique(np.linspace(0, len(self.store) - 1, min(256, len(self.store))).astype(int))
        pool = torch.from_numpy(np.stack([self.store[i] for i in idx]))
        sim = self.embed(frames) @ self.embed(pool).T
        same = (frames[:, None].flatten(2) == pool[None].flatten(2)).all(-1).to(sim.device)
        sim = sim.masked_fill(same, -2)
        nearest = sim.topk(min(2, len(pool)), dim=1).indices.cpu()
        rows = [frames] + [pool[nearest[:, k]] for k in range(nearest.shape[1])]
        write_png(path, colour.image_grid([colour.rgb_uint8_to_lab_n(r) for r in rows]))
        self.net.train(was_training)

    def unet(self) -> torch.nn.Module:
        return self.unet_net

    def describe(self, row: dict[str, float]) -> str:
        return f"NT-Xent {row['loss']:.3f} cos(views) {row['positive_similarity']:.2f}"
