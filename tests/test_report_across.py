"""Two studies of one split side by side (endopat.report.across, endopat.study.report_across): each
method's difference from the baseline in both and the difference of those differences."""

import numpy as np
import pytest

from conftest import TINY_STUDY, run_cli
from endopat.report.across import across
from endopat.report.calibration import across_inference, calibrate, two_protocols


def cells(method: str, level: float, subsets: int = 2, pretrains: int = 1, seeds: int = 2, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"method": method, "fraction": "1/4", "subset": s, "pretrain_rep": p, "repeat": r, "labels": 10,
             "rows": [{"id": f"img{i}", "dice": float(v), "iou": float(v)}
                      for i, v in enumerate(level + rng.normal(0, 0.05, 12))]}
            for s in range(subsets) for p in range(pretrains) for r in range(seeds)]


def study(base: float, pat: float, seed: int) -> list[dict]:
    return cells("baseline", base, seed=seed) + cells("PAT", pat, pretrains=2, seed=seed + 1)


def test_a_study_against_itself_differs_by_nothing():
    rows = across(study(0.6, 0.65, 0), study(0.6, 0.65, 0))
    assert [r["method"] for r in rows] == ["baseline (A - B)", "PAT"]
    assert all(r["diff"] == 0 for r in rows)
    assert rows[1]["effect_a"] == rows[1]["effect_b"] == pytest.approx(0.05, abs=0.05)


def test_a_shift_of_every_score_in_one_study_moves_the_baselines_and_not_the_method_s_gain():
    a = study(0.6, 0.65, 0)
    b = [dict(c, rows=[dict(r, dice=r["dice"] - 0.3) for r in c["rows"]]) for c in a]
    base, pat = across(a, b)
    assert base["diff"] == pytest.approx(0.3) and pat["diff"] == pytest.approx(0.0, abs=1e-12)


def test_a_gain_only_under_one_protocol_is_the_difference_of_differences():
    a = study(0.6, 0.6, 0)
    b = [dict(c, rows=[dict(r, dice=r["dice"] - (0.1 if c["method"] == "PAT" else 0.0)) for r in c["rows"]]) for c in a]
    pat = across(a, b)[1]
    assert pat["diff"] == pytest.approx(0.1) and pat["effect_a"] - pat["effect_b"] == pytest.approx(0.1)


def test_the_difference_of_differences_holds_its_level_in_simulated_pairs_of_studies():
    row = calibrate(across_inference, "4x2x2", "subset x method", 120, seed=2, simulate=two_protocols)
    assert row.false_positive <= 0.06 and row.coverage >= 0.93


def test_a_large_difference_of_differences_is_resolved():
    """The interval is not so wide that nothing could be found: a gain of 0.5 under one protocol only."""
    row = calibrate(across_inference, "4x4x2", "fine-tuning seeds", 40, delta=0.5, seed=3, simulate=two_protocols)
    assert row.power > 0.9


def _two_runs(tmp_path, **b_changes):
    from endopat.study.config import study_from_dict
    from endopat.study.runner import run_study

    base = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "overlays": 0,
            "methods": [{"name": "baseline"}, {"name": "PAT", "pretrain": "target"}]}
    for name, cfg in (("a", base), ("b", {**base, **b_changes})):
        run_study(study_from_dict(cfg), tmp_path / name, progress=False, log=lambda *a: None)
    return tmp_path / "a", tmp_path / "b"


def test_report_against_another_run_of_the_same_split_writes_both_differences_and_theirs(tmp_path, monkeypatch):
    import csv

    a, b = _two_runs(tmp_path, model={**TINY_STUDY["model"], "input": "L"})
    assert run_cli(monkeypatch, "report", a, "--against", b) == 0
    with open(a / "report" / "against-b.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["baseline (A - B)", "PAT"]
    pat = rows[1]
    assert float(pat["diff"]) == pytest.approx(float(pat["effect_a"]) - float(pat["effect_b"]))
    md = (a / "report" / "against-b.md").read_text()
    assert "segmenter input Lab (the paper: the L channel)" in md and "| PAT | 1/2 |" in md


def test_report_against_a_run_of_other_label_subsets_is_a_one_line_error(tmp_path, monkeypatch, capsys):

    a, b = _two_runs(tmp_path, seed=5)
    assert run_cli(monkeypatch, "report", a, "--against", b) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{b}: its label subsets at 1/2 are not {a}'s" in err


def test_two_splits_with_other_test_images_are_refused_naming_the_second():
    from endopat.data.splits import Split
    from endopat.errors import EndopatError
    from endopat.study.report_across import check_paired

    split = Split(["t1", "t2"], ["v"], ["x1", "x2"], {"1/2": [["t1"], ["t2"]]})
    with pytest.raises(EndopatError, match="B: its test images are not A's \\(2 vs 2, 2 differ\\)"):
        check_paired("A", split, "B", Split(split.train, split.val, ["x1", "x3"], split.subsets))
    check_paired("A", split, "B", Split(split.train, split.val, split.test, {}))  # no fraction in common: no error
