"""CaFormer-S18 (Yu et al. 2023, "MetaFormer Baselines for Vision") with the U-Net decoder of
:mod:`endopat.archs.convnext` over its four stages (strides 4, 8, 16, 32).

A MetaFormer block is ``x = r1 * x + mixer(norm1(x)); x = r2 * x + mlp(norm2(x))`` on a
channels-last map. CaFormer's token mixer is an inverted separable convolution in the first two
stages (1x1 up to twice the width, an activation, a 7x7 depth-wise convolution, 1x1 down) and
global self-attention (heads of 32 channels) in the last two; the residual scales ``r`` exist only
there. Norms are layer norms over the channels without bias (eps 1e-6); no linear layer has a
bias. The stem is a 7x7 / 4 convolution then a norm; each later stage starts with a norm then a
3x3 / 2 convolution.

Written with the keys of the authors' release (sail-sg/metaformer ``metaformer_baselines.py``,
``caformer_s18.pth``): ``downsample_layers.0.{conv, post_norm}``, ``downsample_layers.{1,2,3}.{pre_norm,
conv}``, ``stages.i.j.{norm1, token_mixer.{pwconv1, act1, dwconv, pwconv2} or token_mixer.{qkv, proj},
res_scale1, norm2, mlp.{fc1, act, fc2}, res_scale2}``; ``norm.*`` and ``head.*`` unused.

Two activations, two registry entries, because the files differ in them:

* ``caformer_s18``: StarReLU (``s * relu(x)^2 + b``, a learnt scalar pair per activation: the
  ``act1.scale/bias`` and ``act.scale/bias`` keys) in the separable convolutions and the MLPs, as
  the authors trained it on ImageNet;
* ``caformer_s18_relu``: plain ReLU in both places (no such keys), as SurgeNet trained its CaFormer
  (TimJaspers0801/SurgeNet ``metaformer.py``, ``caformer_s18(pretrained='SurgeNet')``): the layout of
  SurgeNet, SurgeNetXL and their procedure-specific ``*_checkpoint_epoch0050_teacher.pth`` files.

A file of the one refuses to load onto the other (StarReLU's tensors are missing or have no place),
so ``endopat weights FILE`` names the right one. ``tests/test_archs_caformer.py`` checks the
features against timm's ``caformer_s18`` (its port of the authors' code) on the same weights, read
through timm's own key conversion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from endopat.archs.base import Arch
from endopat.archs.convnext import GROUPS, StageUNet

DEPTHS, WIDTHS = (3, 3, 9, 3), (64, 128, 320, 512)
ATTENTION_STAGES = (2, 3)  # the stages whose token mixer is self-attention (and which have residual scales)
HEAD_DIM = 32


class StarReLU(nn.Module):
    """``scale * relu(x)^2 + bias`` with a learnt scalar scale and bias (MetaFormer Baselines, eq. 6)."""

    def __init__(self):
        super().__init__()
        self.scale, self.bias = nn.Parameter(torch.ones(1)), nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.relu(x) ** 2 + self.bias


class LayerNormNoBias(nn.LayerNorm):
    """Layer norm over the last (channel) axis with a scale and no bias (the release's ``weight`` key only)."""

    def __init__(self, dim: int):
        super().__init__(dim, eps=1e-6, bias=False)


class Scale(nn.Module):
    """A learnt per-channel scale of the residual branch (``res_scale*.scale``, ones at the start)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class SepConv(nn.Module):
    """MobileNetV2's inverted separable convolution, channels last: 1x1 to 2C, activation, 7x7
    depth-wise, 1x1 back to C; no biases."""

    def __init__(self, dim: int, act: type[nn.Module]):
        super().__init__()
        self.pwconv1, self.act1 = nn.Linear(dim, 2 * dim, bias=False), act()
        self.dwconv = nn.Conv2d(2 * dim, 2 * dim, 7, padding=3, groups=2 * dim, bias=False)
        self.pwconv2 = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.pwconv1(x))
        return self.pwconv2(self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class Attention(nn.Module):
    """Global multi-head self-attention over the map's H*W tokens, heads of 32 channels, no biases."""

    def __init__(self, dim: int):
        super().__init__()
        self.heads = dim // HEAD_DIM
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h, w, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, act: type[nn.Module]):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim, bias=False), act(), nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, attention: bool, act: type[nn.Module]):
        super().__init__()
        self.norm1 = LayerNormNoBias(dim)
        self.token_mixer = Attention(dim) if attention else SepConv(dim, act)
        self.res_scale1 = Scale(dim) if attention else nn.Identity()
        self.norm2, self.mlp = LayerNormNoBias(dim), Mlp(dim, act)
        self.res_scale2 = Scale(dim) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_scale1(x) + self.token_mixer(self.norm1(x))
        return self.res_scale2(x) + self.mlp(self.norm2(x))


class Downsampling(nn.Module):
    """The stem (``post_norm``: 7x7 / 4 then a norm) or a stage's entry (``pre_norm``: a norm then
    3x3 / 2); takes and returns channels-last maps (the stem takes the image)."""

    def __init__(self, in_channels: int, dim: int, stem: bool):
        super().__init__()
        if stem:
            self.conv, self.post_norm = nn.Conv2d(in_channels, dim, 7, 4, 2), LayerNormNoBias(dim)
        else:
            self.pre_norm, self.conv = LayerNormNoBias(in_channels), nn.Conv2d(in_channels, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "post_norm"):
            return self.post_norm(self.conv(x).permute(0, 2, 3, 1))
        return self.conv(self.pre_norm(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class CaFormer(nn.Module):
    """The encoder: ``forward(x)`` returns the four stages' maps ``(B, C_i, H/s_i, W/s_i)``, deepest last."""

    def __init__(self, in_channels: int, act: type[nn.Module], depths=DEPTHS, widths=WIDTHS):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            Downsampling(in_channels if i == 0 else widths[i - 1], widths[i], stem=i == 0) for i in range(len(widths)))
        self.stages = nn.ModuleList(nn.Sequential(*(Block(w, i in ATTENTION_STAGES, act) for _ in range(d)))
                                    for i, (d, w) in enumerate(zip(depths, widths)))
        for m in self.modules():  # the release's init: truncated normal (0.02), zero biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
            out.append(x.permute(0, 3, 1, 2))
        return out


def _arch(name: str, act: type[nn.Module]) -> Arch:
    def build(cfg, in_channels: int, out_channels: int) -> nn.Module:
        return StageUNet(in_channels, out_channels, CaFormer(in_channels, act), WIDTHS, tuple(cfg.decoder_channels))

    return Arch(name, build, lambda net, x: net.encoder(x), lambda cfg: WIDTHS[-1],
                "encoder.downsample_layers.0.conv.weight", "", GROUPS, 32, ("metaformer",),
                stem_bias="encoder.downsample_layers.0.conv.bias", input_layers=("skip.0.weight",))


ARCHS = [_arch("caformer_s18", StarReLU), _arch("caformer_s18_relu", nn.ReLU)]
