"""Vision transformers (ViT-S/14, ViT-B/14, ViT-L/14, ViT-S/16, ViT-B/16) with a UNETR decoder.

The encoder is written here, compactly, with the state-dict keys of the published files, so that
they load strictly and mean what they meant (``tests/test_archs_vit.py`` checks its features
against transformers' ``Dinov2Model`` and ``ViTModel`` on the same weights):

* Meta's DINOv2 (``dinov2_vits14_pretrain.pth``, ``dinov2_vitb14_pretrain.pth``,
  ``dinov2_vitl14_pretrain.pth``) and timm's ``vit_{small,base,large}_patch14_dinov2`` (SurgeNet-DINO
  ships these):
  ``cls_token``, ``pos_embed`` (37 x 37 patches + 1, for 518 px), ``mask_token`` (Meta only),
  ``patch_embed.proj.*``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1,
  mlp.fc2, ls2.gamma}``, ``norm.*``;
* MAE and EndoViT (``{'model': ...}``, ViT-B/16, timm's ``VisionTransformer`` keys, no LayerScale):
  the same without ``ls*``; the MAE decoder's keys (``decoder_*``, its ``mask_token``) are skipped
  and reported by :mod:`endopat.encoder_weights`.

Position embeddings are interpolated (bicubic, as DINOv2 and transformers do) from the file's grid
to the training grid ``image_size / patch`` when the weights are loaded, and again on the fly for
another input size. ``encoder.token_mask`` (``(B, N)`` booleans, N patches), when set, replaces
those patch tokens by ``mask_token`` before the position embeddings: the masked image modelling of
DINOv2's iBOT loss and of SimMIM, which :mod:`endopat.tasks.inpaint` uses on a ViT.

The decoder is UNETR's (Hatamizadeh et al. 2022; MONAI's blocks): four depths of the encoder
(after blocks 3, 6, 9 of 12 and the final norm) as token maps, brought to strides 8, 4, 2 of a
16-pixel patch by transposed convolutions, and a convolution branch on the image itself. For
patch 14 the decoder works on a 16-pixel grid (the image branch sees the input resized to 16 px
per token) and the logits are resized back to the input: one rule for both patch sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from endopat.archs.base import Arch

# name: (width, depth, heads, patch, LayerScale)
VARIANTS = {
    "vit_s14": (384, 12, 6, 14, True),    # DINOv2 ViT-S/14, SurgeNet-DINO (DINOv2 ViT-S/14 at 336 px)
    "vit_b14": (768, 12, 12, 14, True),   # DINOv2 ViT-B/14
    "vit_l14": (1024, 24, 16, 14, True),  # DINOv2 ViT-L/14, SurgeNet-DINO ViT-L
    "vit_s16": (384, 12, 6, 16, False),   # DINO ViT-S/16 (SurgeNetXL DINOv1)
    "vit_b16": (768, 12, 12, 16, False),  # MAE ViT-B/16, EndoViT
}
GROUPS = {"encoder": ("encoder",), "decoder": ("decoder", "head"), "last": ("head",)}


def init_linear(module: nn.Module) -> None:
    """Every linear layer of ``module``: truncated-normal weights (std 0.02), zero biases (ViT's init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int], old_grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Position embeddings ``(1, 1 + n, D)`` (class token first) for a patch grid ``grid``: the
    patch part resized bicubically (``align_corners=False``, no antialiasing: DINOv2, transformers)
    from ``old_grid`` (default: square)."""
    n = pos.shape[1] - 1
    if old_grid is None:
        side = round(n ** 0.5)
        old_grid = (side, side)
    if tuple(old_grid) == tuple(grid):
        return pos
    cls, patches = pos[:, :1], pos[:, 1:]
    patches = patches.reshape(1, *old_grid, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=tuple(grid), mode="bicubic", align_corners=False).to(pos.dtype)
    return torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], dim=1)


class PatchEmbed(nn.Module):
    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D), row-major patches


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):  # DINOv2's init value
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, layer_scale: bool):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, 4 * dim)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """The encoder: ``forward(x)`` returns four token maps ``(B, D, H/p, W/p)``, deepest last."""

    def __init__(self, in_channels: int, dim: int, depth: int, heads: int, patch: int, layer_scale: bool,
                 grid: tuple[int, int]):
        super().__init__()
        self.patch, self.grid = patch, tuple(grid)
        self.patch_embed = PatchEmbed(in_channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid[0] * grid[1], dim) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, layer_scale) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.taps = tuple(depth * k // 4 - 1 for k in (1, 2, 3))  # UNETR: after blocks 3, 6, 9 of 12 (6, 12, 18 of 24)
        self.token_mask: torch.Tensor | None = None
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        init_linear(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        tokens = self.patch_embed(x)
        # always through the mask (none hidden when no token_mask is set): the mask token then has a
        # gradient (zero) in every step, which DDP needs of every parameter
        mask = (torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device) if self.token_mask is None
                else self.token_mask.to(tokens.device))
        tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype).unsqueeze(0), tokens)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)  # shape, not len: traced
        tokens = tokens + resize_pos_embed(self.pos_embed, grid, self.grid)
        out = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self.taps:
                out.append(tokens)
        out.append(self.norm(tokens))
        # drop the class token; (B, N, D) -> (B, D, gh, gw)
        return [t[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, *grid) for t in out]


class UNETRDecoder(nn.Module):
    """UNETR's decoder (MONAI blocks) from the four token maps and the image, at 16 px per token."""

    def __init__(self, in_channels: int, dim: int, features: int):
        super().__init__()
        from monai.networks.blocks import (  # imported when a network is built: MONAI takes seconds
            UnetrBasicBlock,
            UnetrPrUpBlock,
            UnetrUpBlock,
        )

        f, norm = features, "instance"
        self.image = UnetrBasicBlock(2, in_channels, f, kernel_size=3, stride=1, norm_name=norm, res_block=True)
        self.up = nn.ModuleList(
            UnetrPrUpBlock(2, dim, f * 2 ** (3 - n), num_layer=n, kernel_size=3, stride=1, upsample_kernel_size=2,
                           norm_name=norm, conv_block=True, res_block=True) for n in (2, 1, 0))
        widths = (dim, 8 * f, 4 * f, 2 * f, f)
        self.merge = nn.ModuleList(UnetrUpBlock(2, widths[i], widths[i + 1], kernel_size=3, upsample_kernel_size=2,
                                                norm_name=norm, res_block=True) for i in range(4))

    def forward(self, x: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
        gh, gw = levels[-1].shape[-2:]
        if x.shape[-2:] != (16 * gh, 16 * gw):  # patch 14: the image branch on a 16-px grid
            x = F.interpolate(x, size=(16 * gh, 16 * gw), mode="bilinear", align_corners=False)
        skips = [up(t) for up, t in zip(self.up, levels[:3])] + [self.image(x)]  # strides 2, 4, 8 of 16; 1
        out = levels[3]
        for merge, skip in zip(self.merge, (skips[2], skips[1], skips[0], skips[3])):
            out = merge(out, skip)
        return out


class ViTUNet(nn.Module):
    """Encoder, decoder and a 1x1 output convolution ``head``; output at the input's size."""

    def __init__(self, in_channels: int, out_channels: int, variant: tuple | None, grid: tuple[int, int],
                 features: int, encoder: nn.Module | None = None):
        """``variant`` builds a :class:`VisionTransformer`; another ViT encoder (DINOv3's) is given as
        ``encoder`` (with ``variant`` None): the same decoder and head over its token maps."""
        super().__init__()
        if encoder is None:
            dim, depth, heads, patch, layer_scale = variant
            encoder = VisionTransformer(in_channels, dim, depth, heads, patch, layer_scale, grid)
        self.encoder = encoder
        self.decoder = UNETRDecoder(in_channels, encoder.patch_embed.proj.out_channels, features)
        self.head = nn.Conv2d(features, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.decoder(x, self.encoder(x)))
        return y if y.shape[-2:] == x.shape[-2:] else F.interpolate(y, size=x.shape[-2:], mode="bilinear",
                                                                      align_corners=False)


def _arch(name: str) -> Arch:
    variant = VARIANTS[name]
    patch = variant[3]

    def build(cfg, in_channels: int, out_channels: int) -> nn.Module:
        grid = (cfg.image_size[0] // patch, cfg.image_size[1] // patch)
        return ViTUNet(in_channels, out_channels, variant, grid, cfg.decoder_channels[-1])

    return Arch(name, build, lambda net, x: net.encoder(x), lambda cfg: variant[0], "encoder.patch_embed.proj.weight",
                "", GROUPS, patch, ("vit",), stem_bias="encoder.patch_embed.proj.bias", patch=patch,
                input_layers=("decoder.image.layer.conv1.conv.weight", "decoder.image.layer.conv3.conv.weight"))


ARCHS = [_arch(n) for n in VARIANTS]
