"""Encoder U-Nets with standard encoders: MONAI's ``FlexibleUNet`` with ResNet-18/34/50 (built as
torchvision builds them, so that torchvision's weights mean what they meant) and EfficientNet-B0..B4
encoders, a decoder of ``model.decoder_channels``, its last layer ``segmentation_head``."""

from __future__ import annotations

import torch
from torch import nn

from endopat.archs.base import Arch

GROUPS = {"encoder": ("encoder",), "decoder": ("decoder", "segmentation_head"), "last": ("segmentation_head",)}


def _torchvision_resnet_encoder(name: str, in_channels: int) -> nn.Module:
    """MONAI's ResNet encoder built as torchvision's ResNet: 1x1-convolution shortcuts without bias
    (MONAI's resnet18/34 default to MedicalNet's parameter-free shortcut "A")."""
    from monai.networks.nets.resnet import (  # heavy: imported when a network or metric is needed
        ResNet,
        ResNetEncoder,
        get_inplanes,
        resnet_params,
    )

    block, layers = resnet_params[name][:2]
    encoder = ResNetEncoder.__new__(ResNetEncoder)
    ResNet.__init__(encoder, block=block, layers=layers, block_inplanes=get_inplanes(), spatial_dims=2,
                    n_input_channels=in_channels, conv1_t_stride=2, shortcut_type="B", feed_forward=False,
                    bias_downsample=False)
    return encoder


def _builder(name: str):
    def build(cfg, in_channels: int, out_channels: int) -> nn.Module:
        from monai.networks.nets import (
            FlexibleUNet,  # imported when a network is built: MONAI takes seconds
        )

        net = FlexibleUNet(in_channels=in_channels, out_channels=out_channels, backbone=name, pretrained=False,
                           decoder_channels=tuple(cfg.decoder_channels), spatial_dims=2)
        if name.startswith("resnet"):
            net.encoder = _torchvision_resnet_encoder(name, in_channels)
        return net
    return build


def levels(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return list(net.encoder(x))  # FlexibleUNet's encoder returns every level


def _bottleneck(name: str):
    def channels(cfg) -> int:
        from monai.networks.nets.flexible_unet import (
            FLEXUNET_BACKBONE,  # heavy: imported when a network or metric is needed
        )

        return FLEXUNET_BACKBONE.register_dict[name]["feature_channel"][-1]
    return channels


def _arch(name: str) -> Arch:
    resnet = name.startswith("resnet")
    return Arch(name, _builder(name), levels, _bottleneck(name),
                "encoder.conv1.weight" if resnet else "encoder._conv_stem.weight",
                "encoder.bn1" if resnet else "encoder._bn0", GROUPS, 32,
                ("torchvision-resnet",) if resnet else ("efficientnet-pytorch",))


ARCHS = [_arch(n) for n in ("resnet18", "resnet34", "resnet50", *(f"efficientnet-b{i}" for i in range(5)))]
