"""The ConvNeXt family (endopat.archs.convnext): Meta's and torchvision's key layouts load strictly,
the features equal transformers' ConvNextModel / ConvNextV2Model on the same random weights, the
U-Net runs at two sizes, and files of another family or size are refused."""

import re

import pytest
import torch

from endopat.config import ModelConfig
from endopat.encoder_weights import load_encoder_weights, random_published
from endopat.errors import EndopatError
from endopat.networks import build_unet

transformers = pytest.importorskip("transformers")


def to_hf(state: dict) -> dict:
    """Meta's ConvNeXt keys -> transformers' (the mapping of its ConvNeXt conversion scripts)."""
    out = {}
    for k, v in state.items():
        if k.startswith(("norm.", "head.")):
            continue
        k = re.sub(r"^downsample_layers\.0\.0\.", "embeddings.patch_embeddings.", k)
        k = re.sub(r"^downsample_layers\.0\.1\.", "embeddings.layernorm.", k)
        k = re.sub(r"^downsample_layers\.(\d)\.", r"encoder.stages.\1.downsampling_layer.", k)
        k = re.sub(r"^stages\.(\d)\.(\d+)\.", r"encoder.stages.\1.layers.\2.", k)
        k = k.replace(".norm.", ".layernorm.").replace(".gamma", ".layer_scale_parameter")
        k = k.replace("grn.layer_scale_parameter", "grn.weight").replace("grn.beta", "grn.bias")
        out[k] = v
    return out


def rgb_encoder(arch: str, state: dict):
    enc = build_unet(ModelConfig(arch=arch, image_size=(64, 64)), in_channels=3).encoder
    enc.load_state_dict({k: v for k, v in state.items() if not k.startswith(("norm.", "head."))}, strict=True)
    return enc.eval()


@pytest.mark.parametrize("arch, model, config", [("convnext_tiny", "ConvNextModel", "ConvNextConfig"),
                                                 ("convnextv2_tiny", "ConvNextV2Model", "ConvNextV2Config")])
def test_the_encoder_gives_the_features_of_transformers_on_the_same_published_weights(arch, model, config):
    state = random_published(arch, seed=1, layout="meta-convnext")
    ours = rgb_encoder(arch, state)
    theirs = getattr(transformers, model)(getattr(transformers, config)(layer_norm_eps=1e-6)).eval()
    missing, unexpected = theirs.load_state_dict(to_hf(state), strict=False)
    assert not unexpected and all(k.startswith("layernorm.") for k in missing)  # its pooled output's norm
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        got, want = ours(x), theirs(pixel_values=x, output_hidden_states=True).hidden_states[1:]
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-4)


def test_convnext_large_widths_give_the_features_of_transformers_in_a_depth_reduced_copy():
    from endopat.archs.convnext import VARIANTS, ConvNeXt

    depths, widths, _ = (1, 1, 2, 1), VARIANTS["convnext_large"][1], False
    torch.manual_seed(5)
    ours = ConvNeXt(3, depths, widths, False).eval()
    for name, p in ours.named_parameters():
        if name.endswith("gamma"):
            torch.nn.init.normal_(p, 0.1, 0.05)
    theirs = transformers.ConvNextModel(transformers.ConvNextConfig(
        depths=list(depths), hidden_sizes=list(widths), layer_norm_eps=1e-6)).eval()
    missing, unexpected = theirs.load_state_dict(to_hf(ours.state_dict()), strict=False)
    assert not unexpected and all(k.startswith("layernorm.") for k in missing)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got, want = ours(x), theirs(pixel_values=x, output_hidden_states=True).hidden_states[1:]
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-4)


@pytest.mark.slow
def test_a_lemonfm_checkpoint_loads_strictly_onto_convnext_large(tmp_path):
    """LemonFM's layout (visurg-ai/LEMON src/model_loader.py): torchvision convnext_large keys under
    'teacher', each with a 'backbone.' prefix; the same tensors as Meta's layout give."""
    tv = random_published("convnext_large", seed=6, layout="torchvision-convnext")
    torch.save({"teacher": {f"backbone.{k}": v for k, v in tv.items()}, "epoch": 100}, tmp_path / "lemon.pth")
    torch.save({"model": random_published("convnext_large", seed=6)}, tmp_path / "meta.pth")
    cfg = ModelConfig(arch="convnext_large", image_size=(64, 64))
    a, b = build_unet(cfg), build_unet(cfg)
    ra, rb = load_encoder_weights(a, cfg, tmp_path / "lemon.pth"), load_encoder_weights(b, cfg, tmp_path / "meta.pth")
    assert ra.layout == "torchvision-convnext" and len(ra.loaded) == len(rb.loaded)
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with torch.no_grad():
        assert a.eval()(torch.randn(1, 3, 64, 96)).shape == (1, 2, 64, 96)


def test_torchvision_s_convnext_file_loads_the_same_encoder_as_meta_s(tmp_path):
    torch.save(random_published("convnext_tiny", seed=4, layout="torchvision-convnext"), tmp_path / "tv.pth")
    torch.save({"model": random_published("convnext_tiny", seed=4, layout="meta-convnext")}, tmp_path / "meta.pth")
    cfg = ModelConfig(arch="convnext_tiny", image_size=(64, 64))
    a, b = build_unet(cfg), build_unet(cfg)
    ra, rb = load_encoder_weights(a, cfg, tmp_path / "tv.pth"), load_encoder_weights(b, cfg, tmp_path / "meta.pth")
    assert (ra.layout, rb.layout) == ("torchvision-convnext", "meta-convnext")
    assert ra.unused == ["classifier.0.bias", "classifier.0.weight", "classifier.2.bias", "classifier.2.weight"]
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch, input_mode", [("convnext_tiny", "L"), ("convnextv2_tiny", "Lab")])
def test_the_unet_segments_at_two_sizes(arch, input_mode):
    net = build_unet(ModelConfig(arch=arch, image_size=(64, 64), input=input_mode)).eval()
    for size in ((64, 64), (64, 96)):
        with torch.no_grad():
            assert net(torch.randn(1, 1 if input_mode == "L" else 3, *size)).shape == (1, 2, *size)


def test_a_grey_image_reaches_the_l_network_as_the_rgb_network_sees_it_normalised(tmp_path):
    state = random_published("convnextv2_tiny", seed=2)
    torch.save({"model": state}, tmp_path / "w.pth")
    cfg = ModelConfig(arch="convnextv2_tiny", image_size=(64, 64), input="Lab")
    ours = build_unet(cfg)
    load_encoder_weights(ours, cfg, tmp_path / "w.pth")
    rgb = rgb_encoder("convnextv2_tiny", state)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    v = torch.rand(2, 1, 64, 64)
    x_ours = torch.cat([2 * v - 1, torch.zeros(2, 2, 64, 64)], 1)
    with torch.no_grad():
        assert torch.allclose(ours.encoder(x_ours)[-1], rgb((v - mean) / std)[-1], atol=1e-3)


@pytest.mark.parametrize("other, arch, message", [
    ("convnextv2_tiny", "convnext_tiny", "not convnext_tiny encoder weights: .*missing"),  # V2 into V1
    ("convnext_tiny", "convnextv2_tiny", "not convnextv2_tiny encoder weights"),
    ("resnet18", "convnext_tiny", "no tensor matches"),
    ("vit_s16", "convnext_tiny", "no tensor matches")])
def test_a_file_of_another_family_or_version_is_refused_naming_it(tmp_path, other, arch, message):
    torch.save(random_published(other), tmp_path / "other.pth")
    cfg = ModelConfig(arch=arch, image_size=(64, 64))
    with pytest.raises(EndopatError, match=f"other.pth: {message}"):
        load_encoder_weights(build_unet(cfg), cfg, tmp_path / "other.pth")
