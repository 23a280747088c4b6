import math

import pytest
import torch

from endopat.labels import BINARY, Labels
from endopat.metrics import class_dice_iou, dice_iou, headline, image_scores

THREE = Labels(("background", "a", "b"))


def ids(rows):
    return torch.tensor([rows], dtype=torch.uint8)


def test_a_class_absent_from_prediction_and_truth_has_no_score():
    dice, iou = class_dice_iou(ids([[0, 1], [1, 0]]), ids([[0, 1], [0, 0]]), THREE)
    assert math.isnan(dice[0, 2]) and math.isnan(iou[0, 2])
    assert dice[0, 1] == pytest.approx(2 / 3) and iou[0, 1] == pytest.approx(1 / 2)


def test_a_class_only_predicted_scores_zero():
    dice, _ = class_dice_iou(ids([[2, 0]]), ids([[0, 0]]), THREE)
    assert dice[0, 2] == 0


def test_ignored_pixels_count_for_neither_prediction_nor_truth():
    a = class_dice_iou(ids([[1, 2]]), ids([[1, 255]]), THREE)[0]
    b = class_dice_iou(ids([[1, 1]]), ids([[1, 255]]), THREE)[0]
    assert a[0, 1] == b[0, 1] == 1 and math.isnan(a[0, 2])


def test_the_headline_is_the_mean_of_the_scored_foreground_classes_or_one():
    scores = torch.tensor([[0.1, 0.5, float("nan")], [0.9, float("nan"), float("nan")]])
    assert headline(scores, THREE).tolist() == [0.5, 1.0]


@pytest.mark.parametrize("seed", range(5))
def test_the_binary_headline_is_monai_s_instrument_dice(seed):
    g = torch.Generator().manual_seed(seed)
    pred, gt = (torch.rand(3, 9, 11, generator=g) > 0.6 for _ in range(2))
    d, i, _, _ = image_scores(pred.to(torch.uint8), gt.to(torch.uint8), BINARY)
    d0, i0 = dice_iou(pred, gt)
    assert torch.equal(d, d0) and torch.equal(i, i0)
