import numpy as np
import pytest

from endopat.report.bootstrap import Run, interval, resample
from endopat.report.stats import paired_bootstrap_ci, verdict

IMAGES = np.array([0.3, 0.5, 0.7, 0.4, 0.6, 0.5])


def runs(method, shifts, fraction="1/4", subsets=None, pretrain=None, finetune=None):
    n = len(shifts)
    subsets = subsets or list(range(n))
    pretrain = pretrain or [0] * n
    finetune = finetune or [0] * n
    return [Run(method, fraction, s, p, r, IMAGES + d) for d, s, p, r in zip(shifts, subsets, pretrain, finetune)]


def test_identical_runs_leave_the_images_as_the_only_variation_and_match_the_per_image_interval():
    gain = np.array([0.0, 0.2, 0.1, 0.05, 0.15, 0.1])  # per image; identical in every run
    pat = [Run("pat", "1/4", k, 0, 0, IMAGES + gain) for k in range(2)]
    reps = resample(pat + runs("base", [0.0, 0.0]), n_boot=4000)
    d, draws = reps.diff(("pat", "1/4"), ("base", "1/4"))
    lo, hi = interval(draws)
    _, ilo, ihi = paired_bootstrap_ci(IMAGES + gain, IMAGES, n_boot=4000)
    assert d == pytest.approx(gain.mean()) and hi - lo > 0.05
    assert (lo, hi) == pytest.approx((ilo, ihi), abs=0.01)


def test_run_to_run_spread_widens_the_interval_beyond_the_image_only_one():
    # every run beats the baseline by 0.05 on average, but its label subsets differ by 0.18 (docs/method.md)
    pat = runs("pat", [-0.05, 0.15, -0.03, 0.13], subsets=[0, 1, 0, 1], pretrain=[0, 0, 1, 1])
    base = runs("base", [0.0, 0.0])
    d, draws = resample(pat + base, n_boot=2000).diff(("pat", "1/4"), ("base", "1/4"))
    lo, hi = interval(draws)
    _, ilo, ihi = paired_bootstrap_ci(IMAGES + 0.05, IMAGES)
    assert d == pytest.approx(0.05) and lo < ilo and hi > ihi and verdict(lo, hi) == verdict(0, 0)


def test_label_subsets_are_paired_so_a_subset_effect_both_methods_share_cancels():
    # subset 1 is easier by 0.2 for both methods; the method is better by 0.05 on every subset
    pat = runs("pat", [0.05, 0.25, 0.05, 0.25], subsets=[0, 1, 2, 3])
    base = runs("base", [0.0, 0.2, 0.0, 0.2], subsets=[0, 1, 2, 3])
    _, draws = resample(pat + base, n_boot=500, levels=("subset",)).diff(("pat", "1/4"), ("base", "1/4"))
    assert interval(draws) == pytest.approx((0.05, 0.05))


def test_one_level_bootstrap_variance_matches_the_variance_of_a_mean():
    shifts = [0.0, 0.1, 0.3, -0.2, 0.05]
    reps = resample(runs("pat", shifts) + runs("base", [0.0] * 5), n_boot=4000, levels=("subset",))
    _, draws = reps.diff(("pat", "1/4"), ("base", "1/4"))
    assert np.var(draws) == pytest.approx(np.var(shifts) / len(shifts), rel=0.1)


def test_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown levels"):
        resample(runs("pat", [0.1]), levels=("hospital",))
