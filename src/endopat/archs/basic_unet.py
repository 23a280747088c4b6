"""The paper's U-Net: MONAI's ``BasicUNet`` with the widths ``model.features`` (5 encoder levels and
the last decoder level), its last layer the single convolution ``final_conv``."""

from __future__ import annotations

import torch
from torch import nn

from endopat.archs.base import Arch

ENCODER = ("conv_0", "down_1", "down_2", "down_3", "down_4")
DECODER = ("upcat_4", "upcat_3", "upcat_2", "upcat_1", "final_conv")


def build(cfg, in_channels: int, out_channels: int) -> nn.Module:
    from monai.networks.nets import (
        BasicUNet,  # imported when a network is built: MONAI takes seconds
    )

    return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, features=tuple(cfg.features))


def levels(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for name in ENCODER:
        x = getattr(net, name)(x)
        out.append(x)
    return out


ARCH = Arch("basic_unet", build, levels, lambda cfg: cfg.features[4], "conv_0.conv_0.conv.weight",
            "conv_0.conv_0.adn.N", {"encoder": ENCODER, "decoder": DECODER, "last": ("final_conv",)}, 16)
