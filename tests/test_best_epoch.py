import math

import pytest

from endopat.best_epoch import MIN_IMPROVEMENT, improves, kept


@pytest.mark.parametrize("losses, index", [
    ([1.0, 0.8, 0.9, 0.85], 1),  # the best, not the last
    ([1.0, 1.0 - MIN_IMPROVEMENT / 2, 0.99], 2),  # a drop within the margin is no improvement
    ([math.nan, 0.5, 0.7], 1),  # a NaN epoch is never kept
    ([math.nan, math.inf], None),
    ([], None),
])
def test_the_kept_epoch_is_the_first_to_beat_every_earlier_loss_by_the_margin(losses, index):
    assert kept(losses) == index


def test_an_equal_loss_does_not_replace_the_kept_checkpoint():
    assert improves(0.5, math.inf) and not improves(0.5, 0.5)
