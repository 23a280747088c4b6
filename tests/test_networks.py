import torch

from endopat.config import DiscriminatorConfig, ModelConfig
from endopat.networks import Colorizer, Discriminator, build_unet

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
