"""The report's inference, checked by simulation at the sizes studies run (bench/calibration.py
prints the whole table): false positives at most 6 % and coverage at least 93 % at nominal 95 %."""

import numpy as np
import pytest

from endopat.report.calibration import DESIGNS, bootstrap_inference, calibrate, report_inference, study

STUDIES = 120


@pytest.mark.parametrize("design, pattern", [("2x2x2", "subset x method"), ("4x2x2", "pretraining runs"),
                                             ("1x2x2 (full fraction)", "fine-tuning seeds")])
def test_the_report_s_intervals_hold_their_level_where_one_level_dominates(design, pattern):
    row = calibrate(report_inference, design, pattern, STUDIES, seed=1)
    assert row.false_positive <= 0.06 and row.coverage >= 0.93


def test_the_old_bootstrap_percentile_interval_fails_the_same_check():
    row = calibrate(bootstrap_inference(300), "2x2x2", "subset x method", STUDIES, seed=1)
    assert row.false_positive > 0.06


def test_a_simulated_study_has_every_run_of_its_design_on_the_same_images():
    runs, truth = study(DESIGNS["2x2x2"], {k: 0.01 for k in ("image", "image_method", "subset", "subset_method",
                                                             "pretrain", "pretrain_subset", "seed", "residual")},
                        0.03, np.random.default_rng(0))
    assert truth == 0.03
    assert sum(r.method == "PAT" for r in runs) == 8 and sum(r.method == "baseline" for r in runs) == 4
    assert {r.scores.shape for r in runs} == {(40,)}
