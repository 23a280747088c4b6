"""GAN re-colorization in CIE Lab (the paper, section 2.2.1).

Frames -> CIE Lab; the generator G (U-Net) maps L to (a, b); the discriminator D (untrained
ResNet18) judges real Lab images against re-coloured ones. Each step updates D once (eq. 5) and then
G once (eq. 1 = gamma * LSGAN eq. 2 + lambda * rebalanced L2 eq. 3 + phi * L2 eq. 4). G sees L
only; fine-tuning inflates its first layer to the segmenter's input (a/b kernels start at zero)
and re-initialises its last layer. Writes ``ab_histogram.json`` (the a/b counts behind the
rebalancing weights) into the run folder.

Reference: Ross et al., "Exploiting the potential of unlabeled endoscopic video data with
self-supervised learning", IJCARS 2018.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, FiniteFloat

from endopat import colour, losses
from endopat.config import DiscriminatorConfig, LossWeights, _Strict
from endopat.data.store import FrameStore
from endopat.errors import EndopatError
from endopat.io import write_png
from endopat.networks import Colorizer, Discriminator
from endopat.tasks.base import Task


class RecolorSettings(_Strict):
    """The ``pretrain.recolor`` section."""

    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    loss: LossWeights = LossWeights()
    lr_g: float = Field(1e-3, gt=0, description="generator learning rate (docs/method.md: 2e-4 learnt too little)")
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    histogram_frames: int = Field(2000, ge=1, description="frames sampled for the a/b histogram")


def judge(D: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's outputs for real and fake Lab images, from one forward pass over both.

    Both the discriminator and the generator step call this, so D's batch-norm statistics always
    come from the same real + fake batch (judging fakes alone in the generator step would normalise
    them differently from how D learnt to judge them), and DDP sees one forward per backward.
    """
    return D(torch.cat([real, fake])).chunk(2)


class ResolvedWeights(_Strict):
    """Eq. 1's weights as resolved once per run, saved in its state so a resumed run uses the same."""

    gamma: FiniteFloat
    lam: FiniteFloat
    phi: FiniteFloat


def calibrate_weights(G: torch.nn.Module, store: FrameStore, weight_table: torch.Tensor,
                      cfg: LossWeights, device: torch.device, batch: int = 16) -> dict[str, float]:
    """Resolve eq. 1's weights: ``"auto"`` lambda / phi = 1 / the term's value for the generator as
    it is now (freshly initialised), over ``cfg.calibration_frames`` frames spread evenly over the
    store, so each reconstruction term starts near 1 (the paper's "scale between [0, 1]")."""
    resolved = {"gamma": float(cfg.gamma)}
    if cfg.lam != "auto" and cfg.phi != "auto":
        return dict(resolved, lam=float(cfg.lam), phi=float(cfg.phi))
    idx = np.unique(np.linspace(0, len(store) - 1, min(cfg.calibration_frames, len(store))).astype(int))
    reb = plain = 0.0
    with torch.no_grad():
        for start in range(0, len(idx), batch):
            chunk = idx[start : start + batch]
            lab_n = colour.rgb_uint8_to_lab_n(torch.from_numpy(np.stack([store[i] for i in chunk])).to(device))
            ab = lab_n[:, 1:]
            fake = G(lab_n[:, :1])
            reb += float(losses.rebalanced_l2(fake, ab, colour.pixel_weights(ab, weight_table))) * len(chunk)
            plain += float(losses.l2(fake, ab)) * len(chunk)
    reb, plain = reb / len(idx), plain / len(idx)
    resolved["lam"] = 1.0 / max(reb, 1e-8) if cfg.lam == "auto" else float(cfg.lam)
    resolved["phi"] = 1.0 / max(plain, 1e-8) if cfg.phi == "auto" else float(cfg.phi)
    return resolved


def ab_histogram(store: FrameStore, max_frames: int, black_level: float = 0.0,
                 batch: int = 64) -> colour.ABHistogram:
    """a/b histogram (grid size 1) over up to ``max_frames`` frames spread evenly over the store,
    leaving out pixels darker than ``black_level`` (L) when it is > 0."""
    idx = np.unique(np.linspace(0, len(store) - 1, min(max_frames, len(store))).astype(int))
    hist = colour.ABHistogram()
    for start in range(0, len(idx), batch):
        frames = np.stack([store[i] for i in idx[start : start + batch]])
        lab = colour.rgb_to_lab(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
        hist.update_mask(lab, lab[:, 0] >= black_level)
    return hist


@torch.no_grad()
def save_samples(G: torch.nn.Module, frames: torch.Tensor, path: Path) -> None:
    """Rows: grey input, re-coloured, original (frames ``(B, H, W, 3)`` uint8)."""
    was_training = G.training
    G.eval()
    lab_n = colour.rgb_uint8_to_lab_n(frames).to(next(G.parameters()).device)
    L = lab_n[:, :1]
    fake = torch.cat([L, G(L).float()], dim=1)
    grey = torch.cat([L, torch.zeros_like(lab_n[:, 1:])], dim=1)
    write_png(path, colour.image_grid([grey, fake, lab_n]))
    G.train(was_training)


class RecolorTask(Task):
    name = "recolor"
    Settings = RecolorSettings
    fields = ["loss_g", "gan", "rebalanced", "l2", "loss_d", "d_real", "d_fake"]
    reference = "Ross et al., IJCARS 2018 (the paper)"
    figure = "rows: grey input, re-coloured, original"

    def __init__(self, cfg: Any, run: Any, store: FrameStore) -> None:
        super().__init__(cfg, run, store)
        s = self.settings
        hist_path = run.out / "ab_histogram.json"
        try:  # a cache of this run: counted again when missing or damaged
            hist = colour.ABHistogram.load(hist_path)
        except EndopatError:
            hist = ab_histogram(store, s.histogram_frames, s.loss.black_level)
            if run.is_main:
                hist.save(hist_path)
        self.weight_table = torch.from_numpy(hist.weights(s.loss.rebalance_alpha)).to(run.device)

        G, D = Colorizer(cfg.model, self.build_unet(in_channels=1)), Discriminator(s.discriminator)
        if run.fabric.world_size > 1 and run.device.type != "cpu":  # PyTorch syncs batch norm on GPUs only
            D = torch.nn.SyncBatchNorm.convert_sync_batchnorm(D)
        self.G_net = G
        self.G, self.opt_g = run.setup("G", G, torch.optim.Adam(G.parameters(), lr=s.lr_g, betas=s.betas))
        self.D, self.opt_d = run.setup("D", D, torch.optim.Adam(D.parameters(), lr=s.lr_d, betas=s.betas))
        # measured once, on the fresh generator; a resumed run keeps the weights it measured
        saved = run.saved("loss_weights", ResolvedWeights | None, None)
        weights = saved.model_dump() if saved else calibrate_weights(G, store, self.weight_table, s.loss, run.device)
        self.weights = run.extra["loss_weights"] = {k: float(v) for k, v in weights.items()}
        run.log("loss weights: " + ", ".join(f"{k} {v:.4g}" for k, v in self.weights.items()))
        self.single = run.fabric.world_size == 1

    @property
    def in_channels(self) -> int:
        return 1  # G sees L; fine-tuning inflates the first layer to the segmenter's input

    def step(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        fabric, G, D = self.run.fabric, self.G, self.D
        lab_n = colour.rgb_uint8_to_lab_n(frames)
        L, ab = lab_n[:, :1], lab_n[:, 1:]
        P = colour.pixel_weights(ab, self.weight_table)
        fake_ab = G(L)

        # discriminator step, eq. 5
        d_real, d_fake = judge(D, lab_n, torch.cat([L, fake_ab.detach()], dim=1))
        loss_d = losses.discriminator(d_real, d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        fabric.backward(loss_d)
        self.opt_d.step()

        # generator step, eq. 1 (D frozen: its weight gradients would be discarded anyway; under
        # DDP every parameter must take part in the backward, so it stays as it is)
        if self.single:
            D.requires_grad_(False)
        d_fake_g = judge(D, lab_n, torch.cat([L, fake_ab], dim=1))[1]
        lg = losses.generator(d_fake_g, fake_ab, ab, P, **self.weights)
        self.opt_g.zero_grad(set_to_none=True)
        fabric.backward(lg.total)
        self.opt_g.step()
        if self.single:
            D.requires_grad_(True)
        return {"loss_g": lg.total, "gan": lg.gan, "rebalanced": lg.rebalanced, "l2": lg.l2,
                "loss_d": loss_d, "d_real": d_real.mean(), "d_fake": d_fake.mean()}

    def samples(self, frames: torch.Tensor, path: Path) -> None:
        save_samples(self.G_net, frames, path)

    def unet(self) -> torch.nn.Module:
        return self.G_net.unet

    def provenance(self) -> dict[str, Any]:
        return {"loss_weights": self.weights}

    def describe(self, row: dict[str, float]) -> str:
        return (f"G {row['loss_g']:.3f} D {row['loss_d']:.3f} "
                f"D(real) {row['d_real']:.2f} D(fake) {row['d_fake']:.2f}")
