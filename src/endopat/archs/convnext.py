"""ConvNeXt-T, ConvNeXtV2-T and ConvNeXt-L encoders with MONAI's U-Net decoder (FlexibleUNet's).

The encoder is written here with the keys of Meta's releases (``{'model': ...}``:
``downsample_layers.N.*``, ``stages.N.M.{dwconv, norm, pwconv1, pwconv2}`` and the LayerScale
``gamma`` (V1) or the global response norm ``grn.gamma/beta`` (V2), ``norm.*`` and ``head.*``
unused). That is the layout of ``convnext_tiny_1k_224_ema.pth``, ``convnextv2_tiny_1k_224_ema.pt``
and of SurgeNet's ConvNeXtV2 (SurgeNet's own loader reads it into Meta's ConvNeXtV2 class).
torchvision's ``convnext_tiny-983f1562.pth`` (``features.N...``) is mapped onto the same keys by
:mod:`endopat.encoder_weights`; so is LemonFM (visurg-ai/LEMON, ``src/model_loader.py``): a
torchvision ``convnext_large`` whose checkpoint keeps its weights under ``['teacher']`` with a
``backbone.`` prefix (both unwrapped when the file is read). ``tests/test_archs_convnext.py`` checks the features against
transformers' ``ConvNextModel`` / ``ConvNextV2Model`` on the same weights.

The four stages (strides 4, 8, 16, 32) and a stride-2 convolution on the image (``skip``, part of
the decoder: no published weights exist for it) feed FlexibleUNet's decoder with
``model.decoder_channels``, so the decoder is the one the ResNet/EfficientNet U-Nets have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from endopat.archs.base import Arch

# name: (depths, widths, V2)
VARIANTS = {"convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768), False),
            "convnextv2_tiny": ((3, 3, 9, 3), (96, 192, 384, 768), True),
            "convnext_large": ((3, 3, 27, 3), (192, 384, 768, 1536), False)}  # LemonFM, torchvision, Meta
GROUPS = {"encoder": ("encoder",), "decoder": ("skip", "decoder", "segmentation_head"), "last": ("segmentation_head",)}
SKIP = 32  # channels of the stride-2 image convolution


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of ``(B, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class GRN(nn.Module):
    """ConvNeXt V2's global response normalisation (channels last)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        return self.gamma * (x * (gx / (gx.mean(dim=-1, keepdim=True) + 1e-6))) + self.beta + x


class Block(nn.Module):
    def __init__(self, dim: int, v2: bool):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.grn = GRN(4 * dim) if v2 else None
        self.gamma = None if v2 else nn.Parameter(torch.full((dim,), 1e-6))  # V1's LayerScale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 1))))
        y = self.pwconv2(self.grn(y) if self.grn is not None else y)
        y = y * self.gamma if self.gamma is not None else y
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """The encoder: ``forward(x)`` returns the four stages' outputs, deepest last."""

    def __init__(self, in_channels: int, depths: tuple[int, ...], widths: tuple[int, ...], v2: bool):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_channels, widths[0], 4, 4), LayerNorm2d(widths[0], eps=1e-6))]
            + [nn.Sequential(LayerNorm2d(widths[i], eps=1e-6), nn.Conv2d(widths[i], widths[i + 1], 2, 2))
               for i in range(3)])
        self.stages = nn.ModuleList(nn.Sequential(*(Block(w, v2) for _ in range(d))) for d, w in zip(depths, widths))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
            out.append(x)
        return out


class StageUNet(nn.Module):
    """A hierarchical encoder's four stages (strides 4-32) and a stride-2 image convolution under
    FlexibleUNet's decoder and head (ConvNeXt's, PVTv2's)."""

    def __init__(self, in_channels: int, out_channels: int, encoder: nn.Module, widths: tuple[int, ...],
                 decoder_channels: tuple[int, ...]):
        super().__init__()
        from monai.networks.nets.flexible_unet import (  # imported when a network is built: MONAI takes seconds
            SegmentationHead,
            UNetDecoder,
        )

        self.encoder = encoder
        self.skip = nn.Sequential(nn.Conv2d(in_channels, SKIP, 3, 2, 1, bias=False), nn.BatchNorm2d(SKIP),
                                  nn.ReLU(inplace=True))
        # FlexibleUNet's decoder and head, with its defaults
        self.decoder = UNetDecoder(2, (in_channels, SKIP, *widths), tuple(decoder_channels), ("relu", {"inplace": True}),
                                   ("batch", {"eps": 1e-3, "momentum": 0.1}), 0.0, False, "nontrainable", "default",
                                   "nearest", None, True)
        self.segmentation_head = SegmentationHead(2, decoder_channels[-1], out_channels, kernel_size=3, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.skip(x), *self.encoder(x)]
        return self.segmentation_head(self.decoder(features, len(features) - 1))


def _arch(name: str) -> Arch:
    variant = VARIANTS[name]

    def build(cfg, in_channels: int, out_channels: int) -> nn.Module:
        depths, widths, v2 = variant
        return StageUNet(in_channels, out_channels, ConvNeXt(in_channels, depths, widths, v2), widths,
                         tuple(cfg.decoder_channels))

    layouts = ("meta-convnext",) if variant[2] else ("meta-convnext", "torchvision-convnext")
    return Arch(name, build, lambda net, x: net.encoder(x), lambda cfg: variant[1][-1],
                "encoder.downsample_layers.0.0.weight", "", GROUPS, 32, layouts,
                stem_bias="encoder.downsample_layers.0.0.bias", input_layers=("skip.0.weight",))


ARCHS = [_arch(n) for n in VARIANTS]
