import math

import pytest
import torch

from endopat import losses


def test_lsgan_generator_term_matches_hand_computation():
    d_fake = torch.tensor([[0.5], [1.0], [0.0]])
    # ((0.5-1)^2 + 0 + 1) / 3
    assert torch.isclose(losses.lsgan_generator(d_fake), torch.tensor(1.25 / 3))


def test_rebalanced_l2_matches_hand_computation():
    pred = torch.zeros(1, 2, 1, 2)
    true = torch.tensor([[[[1.0, 0.5]], [[0.0, -1.0]]]])
    weights = torch.tensor([[[[0.5, 1.0]], [[1.0, 0.25]]]])
    # h*w = 2: 2/2 * ((1*.5)^2 + (.5*1)^2 + 0 + (-1*.25)^2) = .25+.25+.0625
    assert torch.isclose(losses.rebalanced_l2(pred, true, weights), torch.tensor(0.5625))


def test_plain_l2_matches_hand_computation():
    pred = torch.zeros(1, 2, 1, 2)
    true = torch.tensor([[[[1.0, 0.5]], [[0.0, -1.0]]]])
    # (1 + .25 + 0 + 1) / 2
    assert torch.isclose(losses.l2(pred, true), torch.tensor(1.125))


def test_discriminator_loss_uses_real_one_and_fake_zero():
    d_real = torch.tensor([[1.0], [0.5]])
    d_fake = torch.tensor([[0.0], [0.5]])
    # mean((0, .25)) + mean((0, .25))
    assert torch.isclose(losses.discriminator(d_real, d_fake), torch.tensor(0.25))


def test_worst_case_weights_keep_each_generator_term_within_unit_range():
    from endopat.config import LossWeights

    w = LossWeights(lam=1 / 16, phi=1 / 8)  # each term divided by its largest possible value
    pred = torch.ones(2, 2, 8, 8)
    true = -torch.ones(2, 2, 8, 8)
    ones = torch.ones_like(true)
    out = losses.generator(torch.zeros(2, 1), pred, true, ones, w.gamma, w.lam, w.phi)
    assert torch.isclose(w.gamma * out.gan, torch.tensor(1.0))
    assert torch.isclose(w.lam * out.rebalanced, torch.tensor(1.0))
    assert torch.isclose(w.phi * out.l2, torch.tensor(1.0))
    assert torch.isclose(out.total, torch.tensor(3.0))


def test_segmentation_loss_equals_two_class_cross_entropy_by_hand():
    logits = torch.tensor([[[[2.0]], [[0.0]]]])  # background favoured
    mask = torch.tensor([[[1]]])
    # -log(e^0 / (e^2 + e^0))
    expected = -torch.log(torch.tensor(1.0) / (torch.exp(torch.tensor(2.0)) + 1.0))
    assert torch.isclose(losses.segmentation(logits, mask), expected)


@pytest.mark.parametrize("kind, expected", [("l1", (1.0 + 3.0) / 2), ("l2", (1.0 + 9.0) / 2)])
def test_masked_reconstruction_counts_the_hidden_pixels_only(kind, expected):
    target = torch.zeros(1, 1, 1, 3)
    pred = torch.tensor([[[[1.0, 100.0, -3.0]]]])  # the visible middle pixel is far off
    hidden = torch.tensor([[[[1.0, 0.0, 1.0]]]])
    assert torch.isclose(losses.masked_reconstruction(pred, target, hidden, kind), torch.tensor(expected))


def test_nt_xent_matches_hand_computation():
    import math

    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # each anchor: its positive at cosine 1, two negatives at 0; temperature 1
    expected = math.log(1 + 2 / math.e)
    assert torch.isclose(losses.nt_xent(z, z.clone(), temperature=1.0), torch.tensor(expected), atol=1e-6)


def test_nt_xent_is_lower_when_views_agree_than_when_they_are_swapped():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert losses.nt_xent(z1, z1.clone(), 0.1) < losses.nt_xent(z1, z1.flip(0), 0.1)


@pytest.mark.parametrize("kind", ["ce", "dice_ce"])
def test_the_supervised_loss_ignores_the_ignore_pixels(kind):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 7, generator=g)
    mask = torch.randint(0, 4, (2, 6, 7), generator=g)
    mask[:, :2] = 255
    other = logits.clone()
    other[:, :, :2] = torch.randn(2, 4, 2, 7, generator=g) * 5  # the ignored rows predicted otherwise
    a = losses.supervised(logits, mask, kind, ignore=255)
    b = losses.supervised(other, mask, kind, ignore=255)
    assert torch.isfinite(a) and torch.allclose(a, b)


def test_the_per_image_loss_with_an_ignore_id_averages_the_scored_pixels():
    logits = torch.zeros(1, 2, 1, 4)
    mask = torch.tensor([[[0, 1, 255, 255]]])
    assert losses.segmentation(logits, mask, per_image=True, ignore=255).item() == pytest.approx(math.log(2))
