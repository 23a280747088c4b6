import pytest

import numpy as np

from endopat.report.stats import (labels_to_reach, monotone, paired_bootstrap_ci, savings_interval,
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
    labels = [25, 50, 100]
    baseline, pat = np.array([[0.57, 0.62, 0.64]] * 3), np.array([[0.61, 0.65, 0.68]] * 3)
    s = savings_interval(labels, pat, baseline, 50)
    # 0.62 is a quarter of the way from 0.61 to 0.65: 25 * 2 ** 0.25 = 29.7 labels, 40.5 % saved
    assert s["saved_pct"] == pytest.approx(100 * (1 - 25 * 2**0.25 / 50)) and s["how"] == "interpolated"
    assert s["labels_low"] == s["labels_high"] == pytest.approx(25 * 2**0.25)
    first = savings_interval(labels, pat, baseline, 25)
    assert first["how"] == "at most" and first["saved_pct"] == pytest.approx(0.0) and first["low_below"]


def test_a_dip_between_label_counts_is_pooled_into_a_monotone_curve():
    assert monotone([4, 8, 16], [0.5, 0.45, 0.7]) == pytest.approx([0.475, 0.475, 0.7])
    assert monotone([16, 4], [0.7, 0.5]) == pytest.approx([0.5, 0.7])


def test_replicates_that_never_reach_the_target_leave_the_interval_open_above():
    labels = [4, 16]
    baseline = np.array([[0.5, 0.7]] * 5)
    # observed: reaches 0.7 at 8 labels; two replicates never get there, one already at 4 labels
    pat = np.array([[0.6, 0.8], [0.6, 0.8], [0.5, 0.6], [0.5, 0.65], [0.7, 0.9]])
    s = savings_interval(labels, pat, baseline, 16)
    assert s["labels_needed"] == pytest.approx(8.0) and s["saved_pct"] == pytest.approx(50.0)
    assert s["high_above"] and s["labels_high"] is None and s["saved_low"] is None
    assert s["low_below"] and s["labels_low"] == 4.0 and s["saved_high"] == pytest.approx(75.0)


def test_identical_values_give_a_clear_verdict_in_words():
    assert verdict(0.01, 0.2) == "better"
    assert verdict(-0.2, -0.01) == "worse"
    assert verdict(-0.01, 0.2) == "not resolved at this study size"


def test_stratified_interval_resamples_runs_within_each_split():
    d, lo, hi = stratified_bootstrap_ci({"s1": [0.5, 0.5], "s2": [0.7, 0.7]}, {"s1": [0.4, 0.4], "s2": [0.6, 0.6]})
    assert (d, lo, hi) == pytest.approx((0.1, 0.1, 0.1))
    d, lo, hi = stratified_bootstrap_ci({"s1": [0.4, 0.6]}, {"s1": [0.5, 0.5]})
    assert d == pytest.approx(0.0) and lo < 0 < hi
