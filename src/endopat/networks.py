"""The U-Nets (generator and segmenter) and the ResNet18 discriminator, built on MONAI.

One U-Net architecture serves every task, so pretraining and fine-tuning differ only in the last
layer: the generator's two outputs are the a/b channels (through ``tanh``, applied by
:class:`Colorizer`, which has no weights of its own), the segmenter's two outputs are the logits of
{background, instrument} for the cross-entropy of eq. 6.

Architectures (``model.arch``, the registry :data:`ARCHS`): ``basic_unet`` (the paper's U-Net,
MONAI ``BasicUNet`` with ``model.features`` widths) and encoder-decoder U-Nets with standard
encoders, MONAI ``FlexibleUNet`` — ``resnet18/34/50`` and ``efficientnet-b0``..``b4`` with a
decoder of ``model.decoder_channels``. Each names its first convolution (inflated from L to Lab,
and made from RGB weights by :mod:`endopat.encoder_weights`), its module groups ``encoder``,
``decoder`` and ``last`` (what fine-tuning re-initialises after a pretext task), and how to run the
encoder alone (:func:`encode`).
"""

from __future__ import annotations

import torch
from torch import nn

from endopat.archs import ARCHS, Arch
from endopat.colour import rgb_uint8_to_lab_n
from endopat.config import DiscriminatorConfig, ModelConfig

__all__ = ["ARCHS", "Arch", "arch_of", "build_unet", "encode", "bottleneck_channels", "prepare_input", "Colorizer",
           "Discriminator", "output_conv", "one_logit_head", "reset_modules", "count_parameters"]


def arch_of(cfg: ModelConfig) -> Arch:
    return ARCHS[cfg.arch]


def build_unet(cfg: ModelConfig, in_channels: int | None = None, out_channels: int = 2) -> nn.Module:
    """The configured U-Net (2-D; :mod:`endopat.archs`), two output channels unless told otherwise.

    ``in_channels`` defaults to the segmenter's input (``cfg.in_channels``); the generator is
    always built with 1 (the L channel). Nothing is downloaded: encoder weights come from a local
    file (:mod:`endopat.encoder_weights`).
    """
    return arch_of(cfg).build(cfg, cfg.in_channels if in_channels is None else in_channels, out_channels)


def bottleneck_channels(cfg: ModelConfig) -> int:
    """Channels of :func:`encode`'s output."""
    return arch_of(cfg).bottleneck(cfg)


class Colorizer(nn.Module):
    """Generator G(I_l): normalised L ``(B, 1, H, W)`` -> normalised a/b ``(B, 2, H, W)`` in (-1, 1).

    :meth:`endopat.tasks.base.Task.unet` hands the wrapped U-Net to the checkpoint, whose keys the
    segmenter loads directly.
    """

    def __init__(self, cfg: ModelConfig, unet: nn.Module | None = None):
        super().__init__()
        self.unet = build_unet(cfg, in_channels=1) if unet is None else unet

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.unet(L))


class Discriminator(nn.Module):
    """Untrained ResNet18 (MONAI) on normalised Lab images ``(B, 3, H, W)``; output in [0, 1]."""

    def __init__(self, cfg: DiscriminatorConfig | None = None, in_channels: int = 3):
        super().__init__()
        from monai.networks.nets import (
            resnet18,  # heavy: imported when a network or metric is needed
        )

        cfg = cfg or DiscriminatorConfig()
        self.resnet = resnet18(
            spatial_dims=2,
            n_input_channels=in_channels,
            num_classes=1,
            conv1_t_stride=cfg.stem_stride,
            widen_factor=cfg.width,
        )
        if cfg.norm != "batch":  # MONAI's `norm` argument does not reach the residual blocks
            _replace_batch_norm(self.resnet, cfg.norm)

    def forward(self, lab_n: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.resnet(lab_n))


def _replace_batch_norm(module: nn.Module, kind: str) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            new = nn.InstanceNorm2d(c, affine=True) if kind == "instance" else nn.GroupNorm(min(8, c), c)
            setattr(module, name, new)
        else:
            _replace_batch_norm(child, kind)


def encode(unet: nn.Module, x: torch.Tensor, arch: Arch) -> torch.Tensor:
    """The U-Net's bottleneck features ``(B, C, H/s, W/s)``: its encoder path alone (s = 16 for
    ``basic_unet``, 32 for the encoder U-Nets)."""
    return arch.levels(unet, x)[-1]


def reset_modules(unet: nn.Module, names: tuple[str, ...] = ("final_conv",)) -> list[str]:
    """Re-initialise the named submodules in place (default: the last layer); return their tensors."""
    keys = []
    for name in names:
        for m in unet.get_submodule(name).modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        keys += [k for k in unet.state_dict() if k.startswith(name + ".")]
    return keys


def output_conv(unet: nn.Module, arch: Arch) -> nn.Conv2d:
    """The convolution that gives the segmenter's two logits (the last one of the ``last`` group)."""
    convs = [m for name in arch.groups["last"] for m in unet.get_submodule(name).modules()
             if isinstance(m, nn.Conv2d)]
    return convs[-1]


def one_logit_head(conv: nn.Conv2d) -> None:
    """Train the two-class output as one logit: the background logit is fixed at 0, the instrument
    logit carries the difference. Softmax over (0, z) is sigmoid(z), so the cross-entropy is the
    binary cross-entropy of one logit, as a plain loop trains it (bench/parity.py). With two free
    logits Adam moves both by a step in opposite directions, which doubles the output layer's
    learning rate on their difference; on real frames with L input that cost 0.05 test Dice
    (docs/method.md, "Parity"). A head loaded from a segmenter is folded first (both logits minus
    the background's: the same predictions). Checkpoints keep their two channels."""
    with torch.no_grad():
        conv.weight[1] -= conv.weight[0].clone()
        conv.weight[0] = 0
        if conv.bias is not None:
            conv.bias[1] -= conv.bias[0].clone()
            conv.bias[0] = 0
    keep = torch.ones_like(conv.weight)
    keep[0] = 0
    conv.weight.register_hook(lambda g: g * keep.to(g.device, g.dtype))
    if conv.bias is not None:
        keep_b = torch.tensor([0.0, 1.0])
        conv.bias.register_hook(lambda g: g * keep_b.to(g.device, g.dtype))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prepare_input(images: torch.Tensor, mode: str) -> torch.Tensor:
    """RGB uint8 ``(B, H, W, 3)`` -> segmenter input: normalised L ``(B, 1, H, W)`` or Lab (3 ch)."""

    lab_n = rgb_uint8_to_lab_n(images)
    return lab_n[:, :1].contiguous() if mode == "L" else lab_n
