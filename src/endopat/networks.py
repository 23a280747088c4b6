"""The U-Net (generator and segmenter) and the ResNet18 discriminator, built on MONAI.

One U-Net architecture serves both tasks, so pretraining and fine-tuning differ only in the last
layer (``final_conv``): the generator's two outputs are the a/b channels (through ``tanh``, applied
by :class:`Colorizer`, which has no weights of its own), the segmenter's two outputs are the logits
of {background, instrument} for the cross-entropy of eq. 6.
"""

from __future__ import annotations

import torch
from torch import nn

from endopat.config import DiscriminatorConfig, ModelConfig

FIRST_LAYER = "conv_0.conv_0.conv.weight"


def build_unet(cfg: ModelConfig, in_channels: int | None = None, out_channels: int = 2) -> nn.Module:
    """MONAI ``BasicUNet`` (2-D), two output channels unless told otherwise.

    ``in_channels`` defaults to the segmenter's input (``cfg.in_channels``); the generator is
    always built with 1 (the L channel).
    """
    from monai.networks.nets import BasicUNet

    return BasicUNet(
        spatial_dims=2,
        in_channels=cfg.in_channels if in_channels is None else in_channels,
        out_channels=out_channels,
        features=tuple(cfg.features),
    )


class Colorizer(nn.Module):
    """Generator G(I_l): normalised L ``(B, 1, H, W)`` -> normalised a/b ``(B, 2, H, W)`` in (-1, 1).

    Its ``state_dict`` keys are those of the wrapped U-Net (``unet.`` prefix stripped on export by
    :func:`endopat.checkpoints.unet_state`), so the segmenter loads them directly.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.unet = build_unet(cfg, in_channels=1)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.unet(L))


class Discriminator(nn.Module):
    """Untrained ResNet18 (MONAI) on normalised Lab images ``(B, 3, H, W)``; output in [0, 1]."""

    def __init__(self, cfg: DiscriminatorConfig | None = None, in_channels: int = 3):
        super().__init__()
        from monai.networks.nets import resnet18

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


ENCODER = ("conv_0", "down_1", "down_2", "down_3", "down_4")
DECODER = ("upcat_4", "upcat_3", "upcat_2", "upcat_1", "final_conv")


def encode(unet: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The U-Net's bottleneck features ``(B, C, H/16, W/16)``: its encoder path alone."""
    for name in ENCODER:
        x = getattr(unet, name)(x)
    return x


def reset_modules(unet: nn.Module, names: tuple[str, ...] = ("final_conv",)) -> list[str]:
    """Re-initialise the named submodules in place (default: the last layer); return their tensors."""
    keys = []
    for name in names:
        for m in unet.get_submodule(name).modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        keys += [k for k in unet.state_dict() if k.startswith(name + ".")]
    return keys


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prepare_input(images: torch.Tensor, mode: str) -> torch.Tensor:
    """RGB uint8 ``(B, H, W, 3)`` -> segmenter input: normalised L ``(B, 1, H, W)`` or Lab (3 ch)."""
    from endopat.colour import rgb_uint8_to_lab_n

    lab_n = rgb_uint8_to_lab_n(images)
    return lab_n[:, :1].contiguous() if mode == "L" else lab_n
