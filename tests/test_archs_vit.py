"""The ViT family (endopat.archs.vit): published key layouts load strictly, the features equal an
independent implementation's (transformers' Dinov2Model and ViTModel, on the same random weights
converted with their key mapping), the U-Net runs at two sizes, and the weights loader's rules."""

import pytest
import torch

from endopat.config import ModelConfig
from endopat.encoder_weights import load_encoder_weights, normalisation, random_published
from endopat.networks import ARCHS, build_unet
from endopat.weight_layouts import NORMALISATIONS

transformers = pytest.importorskip("transformers")


def to_hf(state: dict, depth: int, prefix: str, layer: str, norms: tuple[str, str], ls: bool) -> dict:
    """Meta/timm ViT keys -> transformers' (its conversion scripts' mapping; qkv split in three)."""
    out = {f"{prefix}embeddings.cls_token": state["cls_token"],
           f"{prefix}embeddings.position_embeddings": state["pos_embed"],
           f"{prefix}embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           f"{prefix}embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
           f"{prefix}layernorm.weight": state["norm.weight"], f"{prefix}layernorm.bias": state["norm.bias"]}
    if "mask_token" in state and state["mask_token"].dim() == 2:
        out[f"{prefix}embeddings.mask_token"] = state["mask_token"]
    for i in range(depth):
        b, h = f"blocks.{i}.", f"{prefix}{layer}.{i}."
        for part in ("weight", "bias"):
            q, k, v = state[f"{b}attn.qkv.{part}"].chunk(3)
            out |= {f"{h}attention.q_proj.{part}": q, f"{h}attention.k_proj.{part}": k,
                    f"{h}attention.v_proj.{part}": v, f"{h}attention.o_proj.{part}": state[f"{b}attn.proj.{part}"],
                    f"{h}{norms[0]}.{part}": state[f"{b}norm1.{part}"], f"{h}{norms[1]}.{part}": state[f"{b}norm2.{part}"],
                    f"{h}mlp.fc1.{part}": state[f"{b}mlp.fc1.{part}"], f"{h}mlp.fc2.{part}": state[f"{b}mlp.fc2.{part}"]}
        if ls:
            out |= {f"{h}layer_scale1.lambda1": state[f"{b}ls1.gamma"], f"{h}layer_scale2.lambda1": state[f"{b}ls2.gamma"]}
    return out


def hf_model(arch: str, state: dict):
    dim, depth, heads, patch, ls = __import__("endopat.archs.vit", fromlist=["VARIANTS"]).VARIANTS[arch]
    side = round((state["pos_embed"].shape[1] - 1) ** 0.5) * patch
    common = dict(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads, intermediate_size=4 * dim,
                  patch_size=patch, image_size=side, layer_norm_eps=1e-6, qkv_bias=True)
    if ls:
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common))
        hf = to_hf(state, depth, "", "encoder.layer", ("norm1", "norm2"), True)
    else:
        model = transformers.ViTModel(transformers.ViTConfig(**common), add_pooling_layer=False)
        hf = to_hf(state, depth, "", "layers", ("layernorm_before", "layernorm_after"), False)
    missing, unexpected = model.load_state_dict(hf, strict=False)
    assert not unexpected and all("mask_token" in k for k in missing)
    return model.eval()


def rgb_encoder(arch: str, state: dict):
    """Our encoder on RGB at the file's own grid, the file loaded strictly (no key left either way)."""
    side = round((state["pos_embed"].shape[1] - 1) ** 0.5) * ARCHS[arch].patch
    enc = build_unet(ModelConfig(arch=arch, image_size=(side, side)), in_channels=3).encoder
    if "mask_token" not in state:
        state = {**state, "mask_token": enc.mask_token.detach()}
    enc.load_state_dict(state, strict=True)
    return enc.eval()


@pytest.mark.parametrize("arch", ["vit_s14", "vit_b16", pytest.param("vit_l14", marks=pytest.mark.slow)])
def test_the_encoder_gives_the_features_of_transformers_on_the_same_published_weights(arch):
    state = random_published(arch, seed=1)
    ours, theirs = rgb_encoder(arch, state), hf_model(arch, state)
    p = ARCHS[arch].patch
    x = torch.randn(2, 3, 8 * p, 11 * p)  # another grid than the file's: both interpolate the positions
    with torch.no_grad():
        got = ours(x)
        kw = {} if ARCHS[arch].weights_layouts and arch.endswith("14") else {"interpolate_pos_encoding": True}
        out = theirs(pixel_values=x, output_hidden_states=True, **kw)
    want = [out.hidden_states[t + 1] for t in ours.taps] + [out.last_hidden_state]
    for g, w in zip(got, want):
        assert g.shape == (2, w.shape[-1], 8, 11)
        assert torch.allclose(g, w[:, 1:].transpose(1, 2).reshape(g.shape), atol=2e-4)


def test_a_masked_token_is_replaced_by_the_mask_token_as_transformers_does():
    state = random_published("vit_s14", seed=2)
    ours, theirs = rgb_encoder("vit_s14", state), hf_model("vit_s14", state)
    x = torch.randn(1, 3, 56, 56)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [0, 5, 9]] = True
    ours.token_mask = mask
    with torch.no_grad():
        got, want = ours(x)[-1], theirs(pixel_values=x, bool_masked_pos=mask).last_hidden_state
    assert torch.allclose(got, want[:, 1:].transpose(1, 2).reshape(got.shape), atol=2e-4)


@pytest.mark.parametrize("arch, input_mode", [("vit_s14", "L"), ("vit_b14", "Lab"), ("vit_s16", "Lab"),
                                              ("vit_b16", "L")])
def test_the_unet_segments_at_two_sizes(arch, input_mode):
    p = ARCHS[arch].patch
    net = build_unet(ModelConfig(arch=arch, image_size=(4 * p, 4 * p), input=input_mode)).eval()
    for size in ((4 * p, 4 * p), (4 * p, 6 * p)):
        with torch.no_grad():
            assert net(torch.randn(1, 1 if input_mode == "L" else 3, *size)).shape == (1, 2, *size)


def test_loading_interpolates_the_positions_to_the_training_grid_and_reports_it(tmp_path):
    torch.save(random_published("vit_s14"), tmp_path / "dinov2_vits14_pretrain.pth")
    cfg = ModelConfig(arch="vit_s14", image_size=(112, 154))
    net = build_unet(cfg)
    report = load_encoder_weights(net, cfg, tmp_path / "dinov2_vits14_pretrain.pth")
    assert net.encoder.pos_embed.shape == (1, 1 + 8 * 11, 384)
    assert "pos_embed" in report.adapted and "mask_token" in report.loaded and not report.unused
    assert any("interpolated to the training grid" in line for line in report.lines())


def test_an_mae_file_loads_without_its_decoder_which_the_report_lists(tmp_path):
    torch.save({"model": random_published("vit_b16", mae_decoder=True)}, tmp_path / "endovit.pth")
    cfg = ModelConfig(arch="vit_b16", image_size=(64, 64))
    report = load_encoder_weights(build_unet(cfg), cfg, tmp_path / "endovit.pth", norm="endovit")
    assert {"mask_token", "decoder_embed.weight", "decoder_pred.weight"} <= set(report.unused)
    assert "mask_token" in report.fresh  # the MAE decoder's token is not the encoder's
    assert report.provenance("x")["rgb_normalisation"] == normalisation("endovit")


@pytest.mark.parametrize("norm", ["imagenet", "endovit"])
def test_a_grey_image_reaches_the_l_network_as_the_rgb_network_sees_it_normalised(tmp_path, norm):
    """The first-layer rule with the patch embedding: its bias takes the RGB offset (no padding: exact)."""
    state = random_published("vit_s16", seed=3)
    torch.save(state, tmp_path / "w.pth")
    cfg = ModelConfig(arch="vit_s16", image_size=(224, 224), input="L")
    ours = build_unet(cfg)
    load_encoder_weights(ours, cfg, tmp_path / "w.pth", norm=norm)
    rgb = rgb_encoder("vit_s16", state)
    mean, std = (torch.tensor(t).view(1, 3, 1, 1) for t in NORMALISATIONS[norm])
    v = torch.rand(2, 1, 224, 224)
    with torch.no_grad():
        want = rgb.patch_embed((v - mean) / std)
        got = ours.encoder.patch_embed(2 * v - 1)
    assert torch.allclose(got, want, atol=1e-4)

