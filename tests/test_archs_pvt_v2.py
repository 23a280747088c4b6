"""PVTv2-B2 (endopat.archs.pvt_v2): the authors' key layout loads strictly and the features equal
transformers' PvtV2Model on the same random weights (SurgeNetXL's teacher wrapping: test_encoder_weights.py;
two sizes and files of another family: test_archs.py)."""

import re

import pytest
import torch

from endopat.archs.pvt_v2 import B2
from endopat.config import ModelConfig
from endopat.encoder_weights import random_published
from endopat.networks import build_unet

transformers = pytest.importorskip("transformers")


def to_hf(state: dict) -> dict:
    """The release's keys -> transformers' (its PVTv2 conversion's mapping; kv split in two)."""
    out = {}
    for k, v in state.items():
        if k.startswith("head."):
            continue
        if k.endswith(("attn.kv.weight", "attn.kv.bias")):
            key, value = v.chunk(2)
            base = re.sub(r"attn\.kv\.", "attn.key.", k)
            out[base], out[base.replace("attn.key.", "attn.value.")] = key, value
            continue
        out[k] = v
    renamed = {}
    for k, v in out.items():
        k = re.sub(r"^patch_embed(\d)\.proj\.", lambda m: f"encoder.layers.{int(m[1]) - 1}.patch_embedding.proj.", k)
        k = re.sub(r"^patch_embed(\d)\.norm\.", lambda m: f"encoder.layers.{int(m[1]) - 1}.patch_embedding.layer_norm.", k)
        k = re.sub(r"^block(\d)\.(\d+)\.", lambda m: f"encoder.layers.{int(m[1]) - 1}.blocks.{m[2]}.", k)
        k = re.sub(r"^norm(\d)\.", lambda m: f"encoder.layers.{int(m[1]) - 1}.layer_norm.", k)
        for a, b in ((".norm1.", ".layer_norm_1."), (".norm2.", ".layer_norm_2."), (".attn.q.", ".attention.query."),
                     (".attn.key.", ".attention.key."), (".attn.value.", ".attention.value."),
                     (".attn.proj.", ".attention.proj."), (".attn.sr.", ".attention.spatial_reduction."),
                     (".attn.norm.", ".attention.layer_norm."), (".mlp.fc1.", ".mlp.dense1."), (".mlp.fc2.", ".mlp.dense2.")):
            k = k.replace(a, b)
        renamed[k] = v
    return renamed


def test_the_encoder_gives_the_features_of_transformers_on_the_same_published_weights():
    state = random_published("pvt_v2_b2", seed=1)
    g = torch.Generator().manual_seed(1)
    state = {k: (v + 0.1 * torch.randn(v.shape, generator=g) if k.endswith("bias") else v) for k, v in state.items()}
    ours = build_unet(ModelConfig(arch="pvt_v2_b2", image_size=(64, 64)), in_channels=3).encoder
    ours.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")}, strict=True)
    widths, heads, ratios, depths, srs = B2
    theirs = transformers.PvtV2Model(transformers.PvtV2Config(
        hidden_sizes=list(widths), num_attention_heads=list(heads), mlp_ratios=list(ratios), depths=list(depths),
        sr_ratios=list(srs), layer_norm_eps=1e-6)).eval()
    missing, unexpected = theirs.load_state_dict(to_hf(state), strict=False)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        got, want = ours.eval()(x), theirs(pixel_values=x, output_hidden_states=True).hidden_states
    for g_, w in zip(got, want):
        assert g_.shape == w.shape and torch.allclose(g_, w, atol=1e-4)
