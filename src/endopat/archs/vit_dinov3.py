"""DINOv3 vision transformers (ViT-S/16, ViT-B/16, ViT-L/16) with the UNETR decoder of
:mod:`endopat.archs.vit`.

DINOv3 (Siméoni et al. 2025) differs from DINOv2 in three ways that matter for loading its files:
rotary position embeddings instead of learnt absolute ones (so any input whose sides are multiples of
16 needs no interpolation), four register ("storage") tokens after the class token, and a key bias
masked to zero in the fused ``qkv`` projection. The encoder is written with the keys of Meta's
release (``dinov3_vits16_pretrain_lvd1689m-*.pth``; SurgeNet-DINO's DINOv3 files): ``cls_token``,
``storage_tokens``, ``mask_token``, ``patch_embed.proj.*``, ``rope_embed.periods``,
``blocks.N.{norm1, attn.qkv (weight, bias, bias_mask), attn.proj, ls1.gamma, norm2, mlp.fc1,
mlp.fc2, ls2.gamma}``, ``norm.*``; timm's ``vit_*_patch16_dinov3.lvd1689m`` layout (``reg_token``,
``attn.q_bias``/``v_bias``, ``gamma_1/2``) is mapped onto it by :mod:`endopat.weight_layouts`.
``tests/test_archs_dinov3.py`` checks the features against transformers' ``DINOv3ViTModel``.

Rotary embedding (Meta's ``RopePositionEmbedding``, ``normalize_coords="separate"``): patch centres
at ``(i + 0.5) / n`` per axis mapped to [-1, 1]; per head, angles ``2 pi * coord / period`` for the
``head_dim / 4`` periods ``100 ** (2k / (head_dim / 2))`` of each axis (y then x), tiled twice; q
and k of the patch tokens rotated (``x cos + rotate_half(x) sin``), the class and register tokens
not. The register tokens are dropped with the class token before the decoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from endopat.archs.base import Arch
from endopat.archs.vit import GROUPS, LayerScale, Mlp, PatchEmbed, ViTUNet, init_linear

# name: (width, depth, heads)
VARIANTS = {"vit_s16_dinov3": (384, 12, 6), "vit_b16_dinov3": (768, 12, 12), "vit_l16_dinov3": (1024, 24, 16)}
PATCH, REGISTERS, ROPE_BASE = 16, 4, 100.0


class RopeEmbedding(nn.Module):
    """The rotary angles' cos and sin ``(N, head_dim)`` for a patch grid; ``periods`` as Meta stores them."""

    def __init__(self, head_dim: int, base: float = ROPE_BASE):
        super().__init__()
        quarter = head_dim // 4
        self.register_buffer("periods", base ** (2 * torch.arange(quarter, dtype=torch.float32) / (head_dim // 2)))

    def forward(self, grid: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
        axes = [(torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n for n in grid]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).flatten(0, 1) * 2 - 1  # (N, 2): y, x
        angles = 2 * math.pi * coords[:, :, None] / self.periods.to(device)[None, None, :]
        angles = angles.flatten(1, 2).tile(2)  # (N, head_dim)
        return angles.cos(), angles.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    """Fused qkv whose key bias is masked (Meta's ``LinearKMaskedBias``: bias x ``bias_mask``)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        mask = torch.ones(3 * dim)
        mask[dim : 2 * dim] = 0
        self.qkv.register_buffer("bias_mask", mask)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, self.qkv.weight, self.qkv.bias * self.qkv.bias_mask.to(self.qkv.bias.dtype))
        q, k, v = qkv.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        cos, sin = rope
        prefix = n - cos.shape[0]  # the class and register tokens: not rotated
        q, k = (torch.cat([t[:, :, :prefix], t[:, :, prefix:] * cos + _rotate_half(t[:, :, prefix:]) * sin], dim=2)
                for t in (q, k))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-5), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-5), Mlp(dim, 4 * dim), LayerScale(dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DINOv3ViT(nn.Module):
    """The encoder: ``forward(x)`` returns four token maps ``(B, D, H/16, W/16)``, deepest last;
    ``token_mask`` as :class:`endopat.archs.vit.VisionTransformer`'s (masked image modelling)."""

    def __init__(self, in_channels: int, dim: int, depth: int, heads: int, grid: tuple[int, int]):
        super().__init__()
        self.patch, self.grid = PATCH, tuple(grid)
        self.patch_embed = PatchEmbed(in_channels, dim, PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.storage_tokens = nn.Parameter(torch.zeros(1, REGISTERS, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.rope_embed = RopeEmbedding(dim // heads)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.taps = tuple(depth * k // 4 - 1 for k in (1, 2, 3))  # UNETR: after blocks 3, 6, 9 of 12 (6, 12, 18 of 24)
        self.token_mask: torch.Tensor | None = None
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.storage_tokens, std=0.02)
        init_linear(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        grid = (x.shape[-2] // PATCH, x.shape[-1] // PATCH)
        tokens = self.patch_embed(x)
        mask = (torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device) if self.token_mask is None
                else self.token_mask.to(tokens.device))  # always through the mask: DDP needs its gradient
        tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype).unsqueeze(0), tokens)
        b = x.shape[0]
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), self.storage_tokens.expand(b, -1, -1), tokens], dim=1)
        rope = tuple(t.to(tokens.dtype) for t in self.rope_embed(grid, tokens.device))
        out = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, rope)
            if i in self.taps:
                out.append(tokens)
        out.append(self.norm(tokens))
        return [t[:, 1 + REGISTERS :].transpose(1, 2).reshape(b, -1, *grid) for t in out]


def _arch(name: str) -> Arch:
    dim, depth, heads = VARIANTS[name]

    def build(cfg, in_channels: int, out_channels: int) -> nn.Module:
        grid = (cfg.image_size[0] // PATCH, cfg.image_size[1] // PATCH)
        return ViTUNet(in_channels, out_channels, None, grid, cfg.decoder_channels[-1],
                       encoder=DINOv3ViT(in_channels, dim, depth, heads, grid))

    return Arch(name, build, lambda net, x: net.encoder(x), lambda cfg: dim, "encoder.patch_embed.proj.weight", "",
                GROUPS, PATCH, ("meta-dinov3", "timm-dinov3"), stem_bias="encoder.patch_embed.proj.bias", patch=PATCH,
                input_layers=("decoder.image.layer.conv1.conv.weight", "decoder.image.layer.conv3.conv.weight"))


ARCHS = [_arch(n) for n in VARIANTS]
