"""PVTv2-B2 (Wang et al. 2022, "PVT v2: Improved baselines with Pyramid Vision Transformer") with the
U-Net decoder of :mod:`endopat.archs.convnext` over its four stages (strides 4, 8, 16, 32).

Written with the keys of the authors' release (whai362/PVT ``classification/pvt_v2.py``,
``pvt_v2_b2.pth``), which SurgeNetXL's PVTv2 teacher files keep (under ``teacher`` and ``backbone.``,
unwrapped when read): per stage ``i`` = 1..4 ``patch_embed{i}.{proj, norm}`` (an overlapping strided
convolution, 7x7 / 4 then 3x3 / 2, and a layer norm), ``block{i}.N.{norm1, attn.{q, kv, proj, sr,
norm}, norm2, mlp.{fc1, dwconv.dwconv, fc2}}`` (spatial-reduction attention: keys and values from a
map shrunk ``sr`` times by a strided convolution; a depth-wise 3x3 convolution inside the MLP) and
``norm{i}``; ``head.*`` unused. ``tests/test_archs_pvt_v2.py`` checks the features against
transformers' ``PvtV2Model`` on the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from endopat.archs.base import Arch
from endopat.archs.convnext import GROUPS, StageUNet
from endopat.archs.vit import init_linear

# B2: widths, heads, MLP ratios, depths, spatial-reduction ratios
B2 = ((64, 128, 320, 512), (1, 2, 5, 8), (8, 8, 4, 4), (3, 4, 6, 3), (8, 4, 2, 1))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride, kernel // 2)
        self.norm = nn.LayerNorm(dim)  # the release's default eps (1e-5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class Attention(nn.Module):
    """Spatial-reduction attention: queries of every token, keys and values of the shrunk map."""

    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        if sr > 1:
            self.sr, self.norm = nn.Conv2d(dim, dim, sr, sr), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.dwconv, self.act, self.fc2 = nn.Linear(dim, hidden), DWConv(hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, sr: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads, sr)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class PyramidVisionTransformerV2(nn.Module):
    """The encoder: ``forward(x)`` returns the four stages' maps ``(B, C_i, H/s_i, W/s_i)``, deepest last."""

    def __init__(self, in_channels: int, widths=B2[0], heads=B2[1], mlp_ratios=B2[2], depths=B2[3], srs=B2[4]):
        super().__init__()
        self.depth = len(widths)
        for i in range(len(widths)):
            setattr(self, f"patch_embed{i + 1}", OverlapPatchEmbed(in_channels if i == 0 else widths[i - 1], widths[i],
                                                                 7 if i == 0 else 3, 4 if i == 0 else 2))
            setattr(self, f"block{i + 1}", nn.ModuleList(Block(widths[i], heads[i], mlp_ratios[i], srs[i])
                                                         for _ in range(depths[i])))
            setattr(self, f"norm{i + 1}", nn.LayerNorm(widths[i], eps=1e-6))
        init_linear(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(1, self.depth + 1):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"block{i}"):
                x = block(x, h, w)
            x = getattr(self, f"norm{i}")(x).transpose(1, 2).reshape(x.shape[0], -1, h, w)
            out.append(x)
        return out


def _build(cfg, in_channels: int, out_channels: int) -> nn.Module:
    return StageUNet(in_channels, out_channels, PyramidVisionTransformerV2(in_channels), B2[0],
                     tuple(cfg.decoder_channels))


ARCH = Arch("pvt_v2_b2", _build, lambda net, x: net.encoder(x), lambda cfg: B2[0][-1], "encoder.patch_embed1.proj.weight",
            "", GROUPS, 32, ("pvt-v2",), stem_bias="encoder.patch_embed1.proj.bias", input_layers=("skip.0.weight",))
