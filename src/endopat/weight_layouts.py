"""The key layouts encoder weights are published in, and the input normalisation each file expects.

A :class:`Layout` maps an encoder's state-dict key (without ``encoder.``) to the file's key, says
which of the file's tensors are expected to be unused (a classifier, MAE's decoder) and which of
the encoder's may be missing (kept fresh), and adapts a tensor whose published shape differs by
design (position embeddings of another grid, torchvision's ``(C, 1, 1)`` LayerScale).
:mod:`endopat.encoder_weights` reads the file with them; ``model.arch`` names the layouts its
weights come in (:class:`endopat.archs.Arch`), the one that matches most keys is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from endopat.archs.vit import resize_pos_embed

# the RGB normalisation a file's first layer was trained with (mean, std)
NORMALISATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision, DINOv2, MAE, SurgeNet
    "endovit": ((0.3464, 0.2280, 0.2228), (0.2520, 0.2128, 0.2093)),  # EndoViT's Endo700k statistics
}


def _same_numel(key: str, src: torch.Tensor, target: torch.Tensor, encoder: nn.Module) -> torch.Tensor | None:
    return src.reshape(target.shape) if key.endswith("gamma") and src.numel() == target.numel() else None


def _vit_adapt(key: str, src: torch.Tensor, target: torch.Tensor, encoder: nn.Module) -> torch.Tensor | None:
    """``pos_embed`` of a square grid (DINOv2: 37 x 37 for 518 px) resized to the encoder's grid."""
    if key != "pos_embed" or src.dim() != 3 or src.shape[-1] != target.shape[-1]:
        return None
    side = round((src.shape[1] - 1) ** 0.5)
    if side * side != src.shape[1] - 1:
        return None
    return resize_pos_embed(src, encoder.grid)


def _torchvision_convnext(key: str) -> str:
    """Meta's ConvNeXt keys -> torchvision's ``features.N`` Sequential (stem 0, stage i at 2i+1,
    downsampling before stage i at 2i; a block's ``block.0/2/3/5`` and ``layer_scale``)."""
    m = re.match(r"downsample_layers\.(\d+)\.(.*)", key)
    if m:
        return f"features.{2 * int(m[1])}.{m[2]}"
    m = re.match(r"stages\.(\d+)\.(\d+)\.(\w+)(.*)", key)
    if m:
        part = {"dwconv": "block.0", "norm": "block.2", "pwconv1": "block.3", "pwconv2": "block.5",
                "gamma": "layer_scale"}[m[3]]
        return f"features.{2 * int(m[1]) + 1}.{m[2]}.{part}{m[4]}"
    return key


def _timm_dinov3_in(state: dict) -> dict:
    """timm's DINOv3 keys (its ``checkpoint_filter_fn``) -> Meta's: ``reg_token`` -> ``storage_tokens``,
    ``gamma_1/2`` -> ``ls1/2.gamma``, ``attn.q_bias`` + ``attn.v_bias`` -> ``attn.qkv.bias`` (the key
    part zero, as Meta's mask makes it)."""
    out = {}
    for k, v in state.items():
        if k.endswith("attn.v_bias"):
            continue
        if k.endswith("attn.q_bias"):
            out[k.replace("q_bias", "qkv.bias")] = torch.cat([v, torch.zeros_like(v), state[k.replace("q_bias", "v_bias")]])
            continue
        k = k.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        out[k] = v
    return out


def _timm_dinov3_out(state: dict) -> dict:
    """The inverse (what a timm DINOv3 file holds: no mask token, periods or bias masks)."""
    out = {}
    for k, v in state.items():
        if k.endswith(("bias_mask", "periods")) or k == "mask_token":
            continue
        if k.endswith("attn.qkv.bias"):
            q, _, vb = v.chunk(3)
            out[k.replace("qkv.bias", "q_bias")], out[k.replace("qkv.bias", "v_bias")] = q, vb
            continue
        out[k.replace("storage_tokens", "reg_token").replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2")] = v
    return out


@dataclass(frozen=True)
class Layout:
    name: str
    published: Callable[[str], str]
    unused: tuple[str, ...]          # prefixes of file keys with no place in the encoder, expected
    optional: tuple[str, ...] = ("num_batches_tracked",)  # encoder keys that may be missing: kept fresh
    adapt: Callable[[str, torch.Tensor, torch.Tensor, nn.Module], torch.Tensor | None] = lambda k, s, t, e: None
    files: str = ""
    prepare: Callable[[dict], dict] = lambda state: state  # a file's tensors rewritten before matching
    export: Callable[[dict], dict] = lambda state: state  # the inverse, for stand-in files (random_published)


LAYOUTS = {l.name: l for l in (
    Layout("torchvision-resnet", lambda k: k, ("fc.",),
           files="torchvision resnet18-f37072fd.pth, resnet34-b627a593.pth, resnet50-0676ba61.pth"),
    # MONAI groups EfficientNet's blocks by stage (_blocks.<stage>.<block>.), the release numbers
    # them straight through (_blocks.<block>.): the mapping MONAI's own loader applies
    Layout("efficientnet-pytorch", lambda k: re.sub(r"^_blocks\.\d+\.(\d+\.)", r"_blocks.\1", k), ("_fc.",),
           files="EfficientNet-PyTorch efficientnet-b0-355c32eb.pth ... efficientnet-b4-6ed6700e.pth"),
    Layout("vit", lambda k: k, ("head.", "fc_norm.", "decoder_", "mask_token"),
           optional=("mask_token",), adapt=_vit_adapt,
           files="DINOv2 dinov2_vit{s,b}14_pretrain.pth; timm vit_*_patch14_dinov2 (SurgeNet-DINO); "
                 "MAE/EndoViT {'model': ...} (decoder skipped)"),
    Layout("meta-convnext", lambda k: k, ("norm.", "head."), adapt=_same_numel,
           files="Meta convnext_tiny_1k_224_ema.pth, convnextv2_tiny_1k_224_ema.pt, convnext_large_*.pth, "
                 "SurgeNet ConvNeXtV2"),
    Layout("meta-dinov3", lambda k: k, ("head.", "local_cls_norm."),
           files="Meta dinov3_vit{s,b,l}16_pretrain_lvd1689m-*.pth; SurgeNet-DINO DINOv3"),
    # timm's files carry no mask token, rotary periods or bias masks (kept as built: zero, computed,
    # the key bias masked); its distilled B/L files have no q/v bias (kept zero, as theirs are)
    Layout("timm-dinov3", lambda k: k, ("head.", "fc_norm."),
           optional=("mask_token", "periods", "bias_mask", "attn.qkv.bias"), prepare=_timm_dinov3_in,
           export=_timm_dinov3_out, files="timm vit_{small,base,large}_patch16_dinov3.lvd1689m"),
    Layout("pvt-v2", lambda k: k, ("head.",), files="whai362/PVT pvt_v2_b2.pth; SurgeNetXL PVTv2 (teacher file)"),
    Layout("metaformer", lambda k: k, ("norm.", "head."),
           files="sail-sg/metaformer caformer_s18.pth; SurgeNet/SurgeNetXL CaFormer (teacher files, ReLU)"),
    Layout("torchvision-convnext", _torchvision_convnext, ("classifier.",), adapt=_same_numel,
           files="torchvision convnext_tiny-983f1562.pth, convnext_large-ea097f82.pth; LemonFM (its 'teacher', "
                 "'backbone.' keys)"),
)}
