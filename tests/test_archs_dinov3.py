"""The DINOv3 ViTs (endopat.archs.vit_dinov3): Meta's and timm's key layouts load strictly, the
features equal transformers' DINOv3ViTModel on the same random weights (rotary embeddings, register
tokens, the masked key bias), the U-Net runs at two sizes, and files of another family or size are
refused."""

import pytest
import torch

from endopat.archs.vit_dinov3 import REGISTERS, VARIANTS
from endopat.config import ModelConfig
from endopat.encoder_weights import load_encoder_weights, random_published
from endopat.networks import build_unet

transformers = pytest.importorskip("transformers")


def published(arch: str, seed: int, layout: str = "meta-dinov3") -> dict:
    """A stand-in file with non-zero q/k/v biases (the k part masked away by Meta's bias_mask)."""
    state = random_published(arch, seed=seed, layout=layout)
    g = torch.Generator().manual_seed(seed)
    for k in list(state):
        if k.endswith(("qkv.bias", "q_bias", "v_bias", "proj.bias", "fc1.bias", "fc2.bias")):
            state[k] = torch.randn(state[k].shape, generator=g) * 0.1
    return state


def to_hf(state: dict, depth: int) -> dict:
    """Meta's DINOv3 keys -> transformers' (its conversion's mapping; qkv split, the key bias dropped)."""
    out = {"embeddings.cls_token": state["cls_token"], "embeddings.mask_token": state["mask_token"][None],
           "embeddings.register_tokens": state["storage_tokens"],
           "embeddings.patch_embeddings.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.bias": state["patch_embed.proj.bias"],
           "norm.weight": state["norm.weight"], "norm.bias": state["norm.bias"]}
    for i in range(depth):
        b, h = f"blocks.{i}.", f"model.layer.{i}."
        (qw, kw, vw), bias = state[f"{b}attn.qkv.weight"].chunk(3), state[f"{b}attn.qkv.bias"] * state[f"{b}attn.qkv.bias_mask"]
        qb, _, vb = bias.chunk(3)
        out |= {f"{h}attention.q_proj.weight": qw, f"{h}attention.k_proj.weight": kw, f"{h}attention.v_proj.weight": vw,
                f"{h}attention.q_proj.bias": qb, f"{h}attention.v_proj.bias": vb,
                f"{h}attention.o_proj.weight": state[f"{b}attn.proj.weight"],
                f"{h}attention.o_proj.bias": state[f"{b}attn.proj.bias"],
                f"{h}layer_scale1.lambda1": state[f"{b}ls1.gamma"], f"{h}layer_scale2.lambda1": state[f"{b}ls2.gamma"]}
        for part in ("weight", "bias"):
            out |= {f"{h}norm1.{part}": state[f"{b}norm1.{part}"], f"{h}norm2.{part}": state[f"{b}norm2.{part}"],
                    f"{h}mlp.up_proj.{part}": state[f"{b}mlp.fc1.{part}"],
                    f"{h}mlp.down_proj.{part}": state[f"{b}mlp.fc2.{part}"]}
    return out


def rgb_encoder(arch: str, state: dict):
    enc = build_unet(ModelConfig(arch=arch, image_size=(64, 64)), in_channels=3).encoder
    enc.load_state_dict(state, strict=True)
    return enc.eval()


@pytest.mark.parametrize("arch", ["vit_s16_dinov3", pytest.param("vit_l16_dinov3", marks=pytest.mark.slow)])
def test_the_encoder_gives_the_features_of_transformers_on_the_same_published_weights(arch):
    dim, depth, heads = VARIANTS[arch]
    state = published(arch, seed=1)
    ours = rgb_encoder(arch, state)
    theirs = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
        hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads, intermediate_size=4 * dim, patch_size=16,
        image_size=224, num_register_tokens=REGISTERS, layer_norm_eps=1e-5, rope_theta=100.0, query_bias=True,
        key_bias=False, value_bias=True)).eval()
    missing, unexpected = theirs.load_state_dict(to_hf(state, depth), strict=False)
    assert not unexpected and not missing
    x = torch.randn(2, 3, 5 * 16, 7 * 16)  # not the file's grid: rotary embeddings need no interpolation
    with torch.no_grad():
        got = ours(x)
        out = theirs(pixel_values=x, output_hidden_states=True)
    hidden = out.hidden_states[-depth:]  # each layer's output
    want = [hidden[t] for t in ours.taps] + [out.last_hidden_state]
    for g, w in zip(got, want):
        assert g.shape == (2, dim, 5, 7)
        assert torch.allclose(g, w[:, 1 + REGISTERS :].transpose(1, 2).reshape(g.shape), atol=2e-4)


def test_timm_s_dinov3_file_loads_the_same_encoder_as_meta_s(tmp_path):
    from endopat.weight_layouts import LAYOUTS

    meta = published("vit_s16_dinov3", 3)
    torch.save(LAYOUTS["timm-dinov3"].export(meta), tmp_path / "timm.pth")  # reg_token, gamma_1, q_bias/v_bias
    torch.save(meta, tmp_path / "meta.pth")
    cfg = ModelConfig(arch="vit_s16_dinov3", image_size=(64, 64))
    a, b = build_unet(cfg), build_unet(cfg)
    ra, rb = load_encoder_weights(a, cfg, tmp_path / "timm.pth"), load_encoder_weights(b, cfg, tmp_path / "meta.pth")
    assert (ra.layout, rb.layout) == ("timm-dinov3", "meta-dinov3") and not ra.unused and not rb.unused
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    differ = {k for k in sa if not torch.equal(sa[k], sb[k])}
    assert differ == {"mask_token"} | {f"blocks.{i}.attn.qkv.bias" for i in range(12)}  # timm: no mask token, no k bias
    for i in range(12):  # the biases the attention uses (Meta's k part masked away) are the same
        k = f"blocks.{i}.attn.qkv."
        assert torch.equal(sa[k + "bias"] * sa[k + "bias_mask"], sb[k + "bias"] * sb[k + "bias_mask"])
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(a.encoder.eval()(x), b.encoder.eval()(x)))
