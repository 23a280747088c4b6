import pytest
import torch

from endopat.evaluate import summarize
from endopat.metrics import dice_iou


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool)[None]


def test_dice_and_iou_of_known_overlapping_masks():
    pred = masks([1, 1, 0, 0])
    gt = masks([0, 1, 1, 0])
    d, i = dice_iou(pred, gt)
    assert d.item() == pytest.approx(0.5) and i.item() == pytest.approx(1 / 3)


def test_both_masks_empty_counts_as_a_perfect_score():
    d, i = dice_iou(masks([0, 0]), masks([0, 0]))
    assert d.item() == 1.0 and i.item() == 1.0


def test_a_prediction_on_an_empty_ground_truth_scores_zero():
    d, i = dice_iou(masks([1, 0]), masks([0, 0]))
    assert d.item() == 0.0 and i.item() == 0.0


def test_missing_an_instrument_scores_zero():
    d, _ = dice_iou(masks([0, 0]), masks([0, 1]))
    assert d.item() == 0.0


def test_summary_gives_mean_median_and_quartiles():
    rows = [{"dice": v, "iou": v} for v in (0.0, 0.5, 0.5, 1.0)]
    s = summarize(rows)["dice"]
    assert (s["mean"], s["median"], s["q1"], s["q3"], s["n"]) == (0.5, 0.5, 0.375, 0.625, 4)
