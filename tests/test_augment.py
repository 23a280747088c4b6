import torch

from endopat.augment import augment_batch, draws
from endopat.config import AugmentConfig


def _batch(n=16, c=1, size=8):
    x = torch.rand(n, c, size, size) * 2 - 1
    y = (torch.rand(n, size, size) > 0.5).long()
    return x, y


def test_geometric_augmentation_moves_masks_with_their_images():
    x, y = _batch(c=3)
    # tie each mask to its image: the mask is the sign of the L channel
    y = (x[:, 0] > 0).long()
    xa, ya = augment_batch(x, y, AugmentConfig(flips=True, rotate=True, gain=0), draws(0, 0, torch.arange(len(x))))
    assert torch.equal(ya, (xa[:, 0] > 0).long())
    assert not torch.equal(xa, x)  # something was transformed


def test_each_sample_draws_its_own_transform():
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(32, 1, 1, 1) / 64
    y = torch.zeros(32, 8, 8, dtype=torch.long)
    xa, _ = augment_batch(x, y, AugmentConfig(flips=True, rotate=True), draws(1, 0, torch.arange(len(x))))
    assert len({tuple(im.flatten().tolist()) for im in xa}) > 2


def test_a_sample_draws_the_same_transform_in_any_batch():
    # what makes a multi-device run equal a single-device one: ranks hold other batches
    whole = draws(3, 2, torch.arange(8))
    assert torch.equal(torch.cat([draws(3, 2, torch.tensor([0, 2, 4, 6])), draws(3, 2, torch.tensor([1, 3, 5, 7]))]),
                       whole[[0, 2, 4, 6, 1, 3, 5, 7]])


def test_draws_change_with_the_epoch_and_the_seed():
    idx = torch.arange(8)
    assert not torch.equal(draws(0, 0, idx), draws(0, 1, idx))
    assert not torch.equal(draws(0, 0, idx), draws(1, 0, idx))


def test_gain_scales_luminance_and_leaves_colour_channels_and_masks_alone():
    x, y = _batch(c=3)
    xa, ya = augment_batch(x, y, AugmentConfig(flips=False, rotate=False, gain=0.5),
                           draws(2, 0, torch.arange(len(x))))
    assert torch.equal(xa[:, 1:], x[:, 1:]) and torch.equal(ya, y)
    ratio = (xa[:, 0] + 1) / (x[:, 0] + 1)
    per_image = ratio.flatten(1)
    unclamped = (xa[:, 0] < 1).flatten(1) & (x[:, 0] > -0.99).flatten(1)
    for r, ok in zip(per_image, unclamped):
        assert torch.allclose(r[ok], r[ok][0], atol=1e-4) and 0.5 - 1e-4 <= r[ok][0] <= 1.5 + 1e-4
    assert xa[:, 0].min() >= -1 and xa[:, 0].max() <= 1


def test_quarter_turns_are_skipped_for_non_square_images():
    x = torch.rand(8, 1, 4, 8)
    y = torch.zeros(8, 4, 8, dtype=torch.long)
    xa, ya = augment_batch(x, y, AugmentConfig(flips=False, rotate=True), draws(0, 0, torch.arange(len(x))))
    assert torch.equal(xa, x) and ya.shape == (8, 4, 8)


def test_nothing_changes_when_augmentation_is_off():
    x, y = _batch()
    xa, ya = augment_batch(x, y, AugmentConfig(flips=False, rotate=False, gain=0), draws(0, 0, torch.arange(len(x))))
    assert torch.equal(xa, x) and torch.equal(ya, y)
