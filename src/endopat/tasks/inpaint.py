"""Masked image modelling for a U-Net: hide random square patches of the input, reconstruct them.

The U-Net sees the segmenter's own input (L or Lab) with a share ``mask_ratio`` of its
``patch``-pixel squares set to zero (mid-grey, neutral colour in the normalised Lab of
:mod:`endopat.colour`) and predicts every pixel; the loss counts the hidden pixels only
(:func:`endopat.losses.masked_reconstruction`), so copying the visible ones earns nothing. Defaults:

* ``mask_ratio 0.6``: SimMIM (Xie et al., CVPR 2022) and SparK (Tian et al., ICLR 2023, the same
  idea for CNNs) both use 0.6; MAE's 0.75 suits ViTs with their global attention, while a
  convolution needs visible context within its receptive field.
* ``patch 16``: SparK masks at the CNN's own downsampling stride (32 for its ResNets); the U-Net
  here pools 4 times, a stride of 16, so a hidden patch is one bottleneck cell.
* ``loss l1``: SimMIM found L1 slightly better than L2 on raw pixels.
* ``adversarial 0``: Context Encoders (Pathak et al., CVPR 2016) add an LSGAN-style term against a
  discriminator (weight 0.001 against 0.999 for the reconstruction) for sharper fills; off by
  default, and docs/method.md says what it did here.

On a vision transformer (``model.arch`` with a patch, :mod:`endopat.archs.vit`) the hidden squares
are the ViT's own patches (``patch`` is the architecture's) and the encoder sees them as its
``mask_token`` (SimMIM's ViT form; DINOv2's iBOT loss masks the same way): masked image modelling
of the foundation model's own tokens. The pixels are hidden too, since the decoder's image branch
sees the image.

The U-Net's last layer (its reconstruction output) is re-initialised by fine-tuning; everything else
is handed over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from endopat import colour, losses
from endopat.config import DiscriminatorConfig, _Strict
from endopat.errors import EndopatError
from endopat.io import write_png
from endopat.networks import Discriminator, arch_of, prepare_input
from endopat.tasks.base import Task


class InpaintSettings(_Strict):
    """The ``pretrain.inpaint`` section."""

    mask_ratio: float = Field(0.6, gt=0, lt=1, description="share of the patches hidden (SimMIM, SparK: 0.6)")
    patch: int = Field(16, ge=1, description="side of a hidden square in pixels (the U-Net's stride, 16)")
    loss: Literal["l1", "l2"] = Field("l1", description="error on the hidden pixels (SimMIM: l1)")
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    adversarial: float = Field(0.0, ge=0, description="weight of the Context Encoders adversarial term "
                               "(0: off; they used 0.001)")
    discriminator: DiscriminatorConfig = DiscriminatorConfig(width=0.5)
    lr_d: float = Field(2e-4, gt=0)

    @field_validator("patch")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"patch {v} must be a power of two (it must divide the image size)")
        return v


def hide_patches(x: torch.Tensor, ratio: float, patch: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A random mask ``(B, 1, H, W)``, 1 on hidden pixels: exactly ``round(ratio * n)`` of the n
    ``patch`` x ``patch`` squares of each image, drawn independently per image (as MAE); from
    ``generator`` (on the CPU) when given."""
    b, _, h, w = x.shape
    gh, gw = h // patch, w // patch
    n_hidden = max(1, round(ratio * gh * gw))
    noise = torch.rand(b, gh * gw, generator=generator) if generator is not None else \
        torch.rand(b, gh * gw, device=x.device)
    order = noise.to(x.device).argsort(dim=1)
    grid = (order.argsort(dim=1) < n_hidden).to(x.dtype).view(b, 1, gh, gw)
    return grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)


def _as_lab(x: torch.Tensor) -> torch.Tensor:
    """A network input (L or Lab, normalised) as Lab for display: L alone gets neutral colour."""
    return x if x.shape[1] == 3 else torch.cat([x, torch.zeros_like(x).repeat(1, 2, 1, 1)], dim=1)


class InpaintTask(Task):
    name = "inpaint"
    Settings = InpaintSettings
    fields = ["loss", "reconstruction", "gan", "loss_d"]
    reference = "SimMIM (Xie et al. 2022), SparK (Tian et al. 2023); Context Encoders (Pathak et al. 2016)"
    figure = "rows: input with hidden patches, inpainted (visible pixels kept), original"

    def __init__(self, cfg: Any, run: Any, store: Any) -> None:
        super().__init__(cfg, run, store)
        s, c = self.settings, cfg.model.in_channels
        self.tokens = arch_of(cfg.model).patch is not None  # a ViT: hide its own patches as mask tokens
        self.patch = arch_of(cfg.model).patch or s.patch
        if any(side % self.patch for side in cfg.model.image_size):
            raise EndopatError(f"inpaint: patch {self.patch} does not divide image_size {tuple(cfg.model.image_size)}")
        self.net = self.build_unet(in_channels=c, out_channels=c)
        self.model, self.opt = run.setup("unet", self.net, torch.optim.Adam(self.net.parameters(), lr=s.lr, betas=s.betas))
        self.D = None
        if s.adversarial > 0:
            D = Discriminator(s.discriminator, in_channels=c)
            self.D, self.opt_d = run.setup("D", D, torch.optim.Adam(D.parameters(), lr=s.lr_d, betas=(0.5, 0.999)))

    def step(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        s, fabric = self.settings, self.run.fabric
        x = prepare_input(frames, self.cfg.model.input)
        hidden = hide_patches(x, s.mask_ratio, self.patch)
        pred = self._predict(self.model, x, hidden)
        rec = losses.masked_reconstruction(pred, x, hidden, s.loss)
        gan = loss_d = torch.zeros((), device=x.device)
        if self.D is not None:  # Context Encoders: the filled-in image against the real one
            filled = x * (1 - hidden) + pred * hidden
            d_real, d_fake = self.D(torch.cat([x, filled.detach()])).chunk(2)
            loss_d = losses.discriminator(d_real, d_fake)
            self.opt_d.zero_grad(set_to_none=True)
            fabric.backward(loss_d)
            self.opt_d.step()
            gan = losses.lsgan_generator(self.D(torch.cat([x, filled]))[len(x):])
        loss = (1 - s.adversarial) * rec + s.adversarial * gan if self.D is not None else rec
        self.opt.zero_grad(set_to_none=True)
        fabric.backward(loss)
        self.opt.step()
        return {"loss": loss, "reconstruction": rec, "gan": gan, "loss_d": loss_d}

    @torch.no_grad()
    def samples(self, frames: torch.Tensor, path: Path) -> None:
        """Rows: the input with its hidden patches, the inpainting (visible pixels kept), the original."""
        net, s = self.net, self.settings
        was_training = net.training
        net.eval()
        x = prepare_input(frames, self.cfg.model.input).to(self.run.device)
        hidden = hide_patches(x, s.mask_ratio, self.patch, torch.Generator().manual_seed(0))  # same in every figure
        pred = self._predict(net, x, hidden).float()
        rows = [x * (1 - hidden), x * (1 - hidden) + pred * hidden, x]
        write_png(path, colour.image_grid([_as_lab(r).clamp(-1, 1) for r in rows]))
        net.train(was_training)

    def _predict(self, model: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The network on the image with its hidden pixels zeroed (and, on a ViT, those patches as
        mask tokens: ``token_mask`` is set for this forward only)."""
        if not self.tokens:
            return model(x * (1 - hidden))
        self.net.encoder.token_mask = hidden[:, 0, ::self.patch, ::self.patch].flatten(1).bool()
        try:
            return model(x * (1 - hidden))
        finally:
            self.net.encoder.token_mask = None

    def unet(self) -> torch.nn.Module:
        return self.net

    def describe(self, row: dict[str, float]) -> str:
        return f"loss {row['loss']:.4f}" + (f" D {row['loss_d']:.3f}" if self.D is not None else "")
