import pytest
import torch

from endopat.config import DiscriminatorConfig, ModelConfig
from endopat.networks import ARCHS, Colorizer, Discriminator, bottleneck_channels, build_unet, encode

CFG = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


def test_colorizer_maps_luminance_to_two_bounded_channels():
    out = Colorizer(CFG)(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 2, 32, 32) and out.abs().max() < 1.0


def test_discriminator_outputs_one_probability_per_image():
    out = Discriminator(DiscriminatorConfig(width=0.25))(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 1) and (out >= 0).all() and (out <= 1).all()


def test_generator_and_an_l_input_segmenter_share_every_tensor_name_and_shape():
    g = Colorizer(CFG).unet.state_dict()
    s = build_unet(CFG.model_copy(update={"input": "L"})).state_dict()
    assert {k: v.shape for k, v in g.items()} == {k: v.shape for k, v in s.items()}


def test_lab_input_segmenter_differs_only_in_the_first_convolution():
    g = Colorizer(CFG).unet.state_dict()
    s = build_unet(CFG.model_copy(update={"input": "Lab"})).state_dict()
    differing = [k for k in g if g[k].shape != s[k].shape]
    assert differing == ["conv_0.conv_0.conv.weight"]


ENCODER_ARCHS = ["resnet18", "resnet34", "resnet50", *(f"efficientnet-b{i}" for i in range(5))]
SMALL_DECODER = (32, 16, 16, 8, 8)


@pytest.mark.parametrize("arch", ENCODER_ARCHS)
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_an_encoder_unet_segments_and_colours_at_multiples_of_32(arch, size):
    cfg = ModelConfig(arch=arch, image_size=size, decoder_channels=SMALL_DECODER)
    with torch.no_grad():
        assert build_unet(cfg).eval()(torch.randn(1, 3, *size)).shape == (1, 2, *size)
        assert Colorizer(cfg).eval()(torch.randn(1, 1, *size)).shape == (1, 2, *size)


@pytest.mark.parametrize("arch", ENCODER_ARCHS)
def test_the_arch_names_its_first_layer_and_its_groups_cover_the_network(arch):
    cfg = ModelConfig(arch=arch, image_size=(64, 64), decoder_channels=SMALL_DECODER)
    net, spec = build_unet(cfg), ARCHS[arch]
    assert spec.first_layer in net.state_dict() and spec.stem_norm + ".running_mean" in net.state_dict()
    assert set(spec.modules(["encoder", "decoder"])) == {n for n, _ in net.named_children()}
    assert encode(net, torch.randn(1, 3, 64, 64), ARCHS[cfg.arch]).shape[1] == bottleneck_channels(cfg)


def test_a_resnet_encoder_has_torchvision_s_convolution_shortcuts():
    net = build_unet(ModelConfig(arch="resnet18", image_size=(64, 64), decoder_channels=SMALL_DECODER))
    assert "encoder.layer2.0.downsample.0.weight" in net.state_dict()
    assert "encoder.layer2.0.downsample.0.bias" not in net.state_dict()


@pytest.mark.parametrize("data, message", [
    ({"arch": "resnet101"}, "choose one of basic_unet"),
    ({"arch": "resnet18", "image_size": (48, 64)}, "multiples of 32 for resnet18"),
])
def test_a_bad_architecture_setting_is_refused_with_the_reason(data, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        ModelConfig(**data)


def test_folding_a_two_logit_head_into_one_logit_keeps_its_predictions():
    from endopat.config import ModelConfig
    from endopat.networks import ARCHS, build_unet, one_logit_head, output_conv

    torch.manual_seed(0)
    cfg = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))
    net = build_unet(cfg)
    with torch.no_grad():
        output_conv(net, ARCHS["basic_unet"]).bias.copy_(torch.tensor([0.3, -0.2]))
    x = torch.randn(2, 3, 32, 32)
    before = torch.softmax(net(x), 1)
    one_logit_head(output_conv(net, ARCHS["basic_unet"]))
    after = net(x)
    assert torch.allclose(torch.softmax(after, 1), before, atol=1e-6)
    assert (after[:, 0] == 0).all()


def test_training_a_one_logit_head_leaves_the_background_logit_at_zero():
    from endopat.config import ModelConfig
    from endopat.losses import segmentation
    from endopat.networks import ARCHS, build_unet, one_logit_head, output_conv

    cfg = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))
    net = build_unet(cfg)
    conv = output_conv(net, ARCHS["basic_unet"])
    one_logit_head(conv)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    w1 = conv.weight[1].clone()
    for _ in range(3):
        loss = segmentation(net(torch.randn(2, 3, 32, 32)), torch.rand(2, 32, 32) > 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (conv.weight[0] == 0).all() and conv.bias[0] == 0 and not torch.equal(conv.weight[1], w1)


def test_the_output_conv_of_an_encoder_unet_is_its_segmentation_head_s_convolution():
    from endopat.config import ModelConfig
    from endopat.networks import ARCHS, build_unet, output_conv

    net = build_unet(ModelConfig(arch="resnet18", image_size=(64, 64)))
    conv = output_conv(net, ARCHS["resnet18"])
    assert conv.out_channels == 2 and any(m is conv for m in net.segmentation_head.modules())
