"""Encoder weights from files in the published key layouts, made here from randomly initialised
networks (nothing is downloaded): what loads, the first-layer rule, and what is refused."""

import pytest
import torch

from endopat.config import ModelConfig
from endopat.weight_layouts import LAYOUTS
from endopat.encoder_weights import (IMAGENET_MEAN, IMAGENET_STD, load_encoder_weights,
                                     random_published, read_weights_file)
from endopat.errors import EndopatError
from endopat.networks import ARCHS, build_unet

SMALL_DECODER = (16, 16, 8, 8, 8)


def cfg_of(arch: str, input_mode: str = "Lab") -> ModelConfig:
    return ModelConfig(arch=arch, image_size=(64, 64), decoder_channels=SMALL_DECODER, input=input_mode)


def published(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_published(arch, seed)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", *(f"efficientnet-b{i}" for i in range(5))])
def test_weights_in_the_published_layout_load_into_every_encoder_tensor(tmp_path, arch):
    state = published(arch)
    torch.save(state, tmp_path / "w.pth")
    net = build_unet(cfg_of(arch))
    report = load_encoder_weights(net, cfg_of(arch), tmp_path / "w.pth")
    loaded = net.state_dict()
    layout = LAYOUTS[ARCHS[arch].weights_layouts[0]]
    same = [k for k in loaded if k.startswith("encoder.") and "running_mean" not in k and "stem" not in k
            and not k.endswith(("num_batches_tracked", ARCHS[arch].first_layer[len("encoder."):]))]
    assert all(torch.equal(loaded[k], state[layout.published(k[len("encoder."):])]) for k in same)
    assert len(report.loaded) == len(state) - len(report.unused)


def test_a_safetensors_file_loads_like_the_pth(tmp_path):
    from safetensors.torch import save_file

    state = published("resnet18")
    torch.save(state, tmp_path / "w.pth")
    save_file(state, str(tmp_path / "w.safetensors"))
    a, b = build_unet(cfg_of("resnet18")), build_unet(cfg_of("resnet18"))
    load_encoder_weights(a, cfg_of("resnet18"), tmp_path / "w.pth")
    load_encoder_weights(b, cfg_of("resnet18"), tmp_path / "w.safetensors")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict() if k.startswith("encoder."))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_a_wrapped_or_data_parallel_state_dict_is_unwrapped(tmp_path, wrapper):
    state = {f"module.{k}": v for k, v in published("resnet18").items()}
    torch.save({wrapper: state, "epoch": torch.tensor(90)}, tmp_path / "w.pth")
    assert set(read_weights_file(tmp_path / "w.pth")) == set(published("resnet18"))


@pytest.mark.parametrize("input_mode", ["L", "Lab"])
def test_the_first_block_answers_a_grey_image_as_the_rgb_network_answers_it_normalised(tmp_path, input_mode):
    """The rule of endopat.encoder_weights: grey lightness L as v = L/100 in each RGB channel."""
    state = published("resnet18")
    torch.save(state, tmp_path / "w.pth")
    rgb = build_unet(cfg_of("resnet18"), in_channels=3).encoder
    rgb.load_state_dict(state, strict=False)
    ours = build_unet(cfg_of("resnet18", input_mode))
    load_encoder_weights(ours, cfg_of("resnet18", input_mode), tmp_path / "w.pth")
    rgb.eval(), ours.eval()
    v = torch.rand(2, 1, 64, 64)
    x_rgb = (v - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x_ours = torch.cat([2 * v - 1, torch.zeros(2, 2, 64, 64)], 1)[:, : ours.encoder.conv1.in_channels]
    with torch.no_grad():
        want = rgb.bn1(rgb.conv1(x_rgb))[..., 2:-2, 2:-2]  # away from the zero padding
        got = ours.encoder.bn1(ours.encoder.conv1(x_ours))[..., 2:-2, 2:-2]
    assert torch.allclose(got, want, atol=1e-4)


def test_the_report_names_the_file_the_rule_and_what_was_not_used(tmp_path):
    torch.save(published("resnet18"), tmp_path / "w.pth")
    lines = "\n".join(load_encoder_weights(build_unet(cfg_of("resnet18")), cfg_of("resnet18"), tmp_path / "w.pth").lines())
    assert "w.pth (torchvision-resnet layout, resnet18): loaded" in lines and "a/b kernels zero" in lines
    assert "not used (2): fc.bias, fc.weight" in lines


@pytest.mark.parametrize("make, arch, message", [
    (lambda: published("resnet50"), "resnet18", "of another shape"),
    (lambda: published("resnet34"), "resnet18", "have no place in resnet18"),
    (lambda: {k: v for k, v in published("resnet18").items() if not k.startswith("layer4")}, "resnet18",
     "missing"),
    (lambda: published("resnet18"), "efficientnet-b0", "no tensor matches"),
    (lambda: published("efficientnet-b1"), "efficientnet-b0", "not efficientnet-b0 encoder weights"),
])
def test_weights_of_another_network_are_refused_naming_the_file(tmp_path, make, arch, message):
    torch.save(make(), tmp_path / "w.pth")
    with pytest.raises(EndopatError, match=message) as err:
        load_encoder_weights(build_unet(cfg_of(arch)), cfg_of(arch), tmp_path / "w.pth")
    assert str(tmp_path / "w.pth") in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["w.pth", "w.safetensors"])
def test_a_truncated_file_is_a_one_line_error_naming_it(tmp_path, name):
    from safetensors.torch import save_file

    state = published("resnet18")
    torch.save(state, tmp_path / "w.pth") if name.endswith("pth") else save_file(state, str(tmp_path / name))
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(EndopatError, match=name) as err:
        read_weights_file(tmp_path / name)
    assert "\n" not in str(err.value)


def test_the_paper_s_unet_takes_no_encoder_weights(tmp_path):
    torch.save(published("resnet18"), tmp_path / "w.pth")
    cfg = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))
    with pytest.raises(EndopatError, match="basic_unet has no published encoder weights"):
        load_encoder_weights(build_unet(cfg), cfg, tmp_path / "w.pth")


def test_which_arch_names_the_architectures_a_file_loads_onto_and_why_not_the_others(tmp_path):
    from endopat.encoder_weights import which_arch

    torch.save(random_published("resnet18"), tmp_path / "w.pth")
    loads, refused = which_arch(tmp_path / "w.pth")
    assert list(loads) == ["resnet18"] and loads["resnet18"].layout == "torchvision-resnet"
    assert "resnet34" in refused and "vit_s14" in refused and "basic_unet" not in refused


@pytest.mark.parametrize("arch, layout, unused", [
    ("pvt_v2_b2", "pvt-v2", ["head.bias", "head.weight"]),
    ("caformer_s18_relu", "metaformer", ["head.fc1.weight", "head.fc2.weight", "norm.bias", "norm.weight"])])
def test_a_surgenetxl_teacher_file_loads_strictly(tmp_path, arch, layout, unused):
    """SurgeNet's ``*_checkpoint_epoch0050_teacher.pth``: the weights under ``teacher``, keys ``backbone.``-prefixed."""
    state = published(arch, seed=2)
    torch.save({"teacher": {f"backbone.{k}": v for k, v in state.items()}}, tmp_path / "teacher.pth")
    report = load_encoder_weights(build_unet(cfg_of(arch)), cfg_of(arch), tmp_path / "teacher.pth")
    assert report.layout == layout and report.unused == unused and not report.fresh
