import numpy as np
import pytest
import torch

from endopat import colour


def test_lab_round_trip_recovers_rgb():
    rgb = torch.rand(2, 3, 16, 16)
    back = colour.lab_to_rgb(colour.rgb_to_lab(rgb))
    assert torch.allclose(back, rgb, atol=1e-4)


def test_normalised_lab_lies_in_unit_range_for_any_srgb_colour():
    rgb = torch.rand(4, 3, 32, 32)
    rgb[0] = 0.0
    rgb[1] = 1.0
    lab_n = colour.normalize_lab(colour.rgb_to_lab(rgb))
    assert lab_n.min() >= -1.0 and lab_n.max() <= 1.0


def test_normalisation_inverts_exactly():
    lab = colour.rgb_to_lab(torch.rand(1, 3, 8, 8))
    assert torch.allclose(colour.denormalize_lab(colour.normalize_lab(lab)), lab, atol=1e-5)


def test_histogram_counts_each_value_in_its_unit_bin():
    lab = torch.zeros(1, 3, 1, 4)
    lab[0, 1] = torch.tensor([0.2, 0.9, -0.5, 10.0])  # a: bins 128, 128, 127, 138
    lab[0, 2] = torch.tensor([-128.0, 127.5, 300.0, -300.0])  # b: clamps to end bins
    h = colour.ABHistogram().update(lab)
    assert h.counts[0, 128] == 2 and h.counts[0, 127] == 1 and h.counts[0, 138] == 1
    assert h.counts[1, 0] == 2 and h.counts[1, 255] == 2
    assert h.total == 4


def test_rare_colours_get_larger_weights_than_frequent_ones():
    # crafted image: 90 red-ish pixels (a=40), 10 grey pixels (a=0); b constant
    lab = torch.zeros(1, 3, 10, 10)
    lab[0, 1] = 40.0
    lab[0, 1, 0, :] = 0.0
    h = colour.ABHistogram().update(lab)
    w = h.weights(alpha=0.5)
    assert w[0, 128 + 0] > w[0, 128 + 40]
    # by hand: p = 0.1 / 0.9, Q = 2, alpha = .5 -> P = 1 / (1 + Q p) = 1/1.2, 1/2.8
    assert np.isclose(w[0, 128], 1 / 1.2)
    assert np.isclose(w[0, 168], 1 / 2.8)
    assert w.max() <= 1.0 and w.min() > 0.0


def test_unseen_values_get_the_maximum_weight():
    lab = torch.zeros(1, 3, 4, 4)
    w = colour.ABHistogram().update(lab).weights()
    assert w[0, 200] == 1.0


def test_pixel_weights_look_up_the_true_colour_bin():
    table = torch.arange(512, dtype=torch.float32).reshape(2, 256)
    ab_n = torch.zeros(1, 2, 1, 2)
    ab_n[0, 0, 0, 1] = 10.0 / 128
    ab_n[0, 1, 0, 0] = -1.0
    p = colour.pixel_weights(ab_n, table)
    assert p[0, 0, 0].tolist() == [128.0, 138.0]
    assert p[0, 1, 0].tolist() == [256.0 + 0.0, 256.0 + 128.0]


def test_histogram_survives_a_save_and_load(tmp_path):
    h = colour.ABHistogram().update(colour.rgb_to_lab(torch.rand(1, 3, 8, 8)))
    h.save(tmp_path / "h.json")
    assert (colour.ABHistogram.load(tmp_path / "h.json").counts == h.counts).all()


@pytest.mark.parametrize("layout", ["BHWC", "BCHW"])
def test_the_uint8_fast_path_equals_kornia_on_every_red_green_pair(layout):
    from endopat.colour import normalize_lab, rgb_to_lab, rgb_uint8_to_lab_n

    v = torch.arange(256, dtype=torch.uint8)
    rg = torch.stack(torch.meshgrid(v, v, indexing="ij"), -1)
    images = torch.stack([torch.cat([rg, torch.full((256, 256, 1), b, dtype=torch.uint8)], -1)
                          for b in (0, 9, 128, 255)])
    reference = normalize_lab(rgb_to_lab(images.permute(0, 3, 1, 2).float() / 255))
    x = images if layout == "BHWC" else images.permute(0, 3, 1, 2).contiguous()
    assert float((rgb_uint8_to_lab_n(x) - reference).abs().max()) < 1e-5
