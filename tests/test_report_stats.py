import pytest

from endopat.report.stats import (cluster_bootstrap_diff, label_savings, labels_to_reach, paired_bootstrap_ci,
                                  stratified_bootstrap_ci, verdict, wilcoxon_p)


def test_bootstrap_ci_of_a_constant_difference_is_that_constant():
    mean, lo, hi = paired_bootstrap_ci([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert (mean, lo, hi) == pytest.approx((0.1, 0.1, 0.1))


def test_bootstrap_ci_contains_the_mean_difference():
    a = [0.9, 0.2, 0.6, 0.7, 0.4, 0.8]
    b = [0.5, 0.3, 0.5, 0.6, 0.5, 0.6]
    mean, lo, hi = paired_bootstrap_ci(a, b)
    assert lo < mean < hi and mean == pytest.approx(0.1)


def test_wilcoxon_gives_one_without_differences_and_small_p_for_consistent_gains():
    assert wilcoxon_p([0.5, 0.6], [0.5, 0.6]) == 1.0
    a = [0.5 + 0.01 * i for i in range(20)]
    assert wilcoxon_p([x + 0.1 for x in a], a) < 0.001


def test_labels_are_interpolated_in_log_space():
    # 4 labels -> 0.5, 16 labels -> 0.7; 0.6 is halfway in log2: 8 labels
    n, how = labels_to_reach([4, 16], [0.5, 0.7], 0.6)
    assert n == pytest.approx(8.0) and how == "interpolated"


def test_a_target_below_the_first_point_gives_an_upper_bound_and_above_the_curve_none():
    assert labels_to_reach([4, 8], [0.7, 0.8], 0.6) == (4.0, "at most")
    assert labels_to_reach([4, 8], [0.5, 0.6], 0.9) == (None, "not reached")


def test_label_savings_match_the_papers_reading_of_a_curve():
    # Table 1 of the paper (DSC means): baseline 0.62 at 50 labels; PAT 0.61 at 25, 0.65 at 50
    baseline = {25: 0.57, 50: 0.62, 100: 0.64}
    pat = {25: 0.61, 50: 0.65, 100: 0.68}
    s = label_savings(pat, baseline)
    # 0.62 is a quarter of the way from 0.61 to 0.65: 25 * 2 ** 0.25 = 29.7 labels, 40.5 % saved
    assert s[50]["saved_pct"] == pytest.approx(100 * (1 - 25 * 2**0.25 / 50)) and s[50]["how"] == "interpolated"
    assert s[25]["how"] == "at most" and s[25]["saved_pct"] == pytest.approx(0.0)


def test_run_to_run_spread_widens_the_cluster_interval_beyond_the_image_only_one():
    # every run beats the baseline on every image by 0.05 on average, but runs differ by +-0.1
    images = [0.3, 0.5, 0.7, 0.4, 0.6, 0.5]
    runs = [[x + 0.05 + shift for x in images] for shift in (-0.1, 0.1, -0.08, 0.08)]
    base = [images, images]
    d, lo, hi = cluster_bootstrap_diff(runs, base)
    _, ilo, ihi = paired_bootstrap_ci([sum(c) / 4 for c in zip(*runs)], images)
    assert d == pytest.approx(0.05) and lo < ilo and hi > ihi and verdict(lo, hi) == "not resolved at this study size"


def test_identical_runs_give_the_image_only_interval_and_a_clear_verdict():
    runs = [[0.6, 0.7, 0.8]] * 3
    d, lo, hi = cluster_bootstrap_diff(runs, [[0.5, 0.6, 0.7]] * 2)
    assert (d, lo, hi) == pytest.approx((0.1, 0.1, 0.1)) and verdict(lo, hi) == "better"
    assert verdict(-0.2, -0.01) == "worse"


def test_stratified_interval_resamples_runs_within_each_split():
    d, lo, hi = stratified_bootstrap_ci({"s1": [0.5, 0.5], "s2": [0.7, 0.7]}, {"s1": [0.4, 0.4], "s2": [0.6, 0.6]})
    assert (d, lo, hi) == pytest.approx((0.1, 0.1, 0.1))
    d, lo, hi = stratified_bootstrap_ci({"s1": [0.4, 0.6]}, {"s1": [0.5, 0.5]})
    assert d == pytest.approx(0.0) and lo < 0 < hi
