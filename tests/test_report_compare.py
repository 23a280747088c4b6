import numpy as np
import pytest

from endopat.report.compare import Comparison, fmt_labels, fmt_saved

IMAGES = [f"img{i:02d}" for i in range(20)]


def _cells(method, fraction, labels, mean, runs=3, offsets=None, seed=0, image_effect=None, interaction=0.0):
    """Finished cells of one method at one fraction: ``runs`` runs (subset k), run k ``offsets[k]``
    from ``mean`` (offsets of mean 0, so the method's mean is exactly ``mean``)."""
    rng = np.random.default_rng(seed)
    image_effect = np.zeros(len(IMAGES)) if image_effect is None else image_effect
    offsets = np.zeros(runs) if offsets is None else offsets
    out = []
    for k in range(runs):
        scores = mean + image_effect + offsets[k] + rng.normal(0, interaction, len(IMAGES))
        out.append({"method": method, "fraction": fraction, "subset": k, "repeat": 0, "pretrain_rep": 0,
                    "labels": labels, "rows": [{"id": i, "dice": float(s), "iou": float(s)}
                                               for i, s in zip(IMAGES, scores)]})
    return out


IMAGE_EFFECT = np.random.default_rng(9).normal(0, 0.1, len(IMAGES))


def _study(better_by: float, curve=(0.5, 0.6, 0.7)):
    cells = []
    for f, n, b in zip(("1/4", "1/2", "1"), (4, 8, 16), curve):
        cells += _cells("baseline", f, n, b, offsets=(-0.02, 0, 0.02), image_effect=IMAGE_EFFECT)
        cells += _cells("PAT", f, n, b + better_by, offsets=(0.02, -0.02, 0), image_effect=IMAGE_EFFECT)
    return cells


@pytest.mark.parametrize("better_by, verdict", [(0.1, "better"), (-0.1, "worse"),
                                                 (0.0, "not resolved at this study size")])
def test_a_difference_has_the_observed_mean_and_an_interval_that_says_whether_it_is_resolved(better_by, verdict):
    rows = {r["fraction"]: r for r in Comparison(_study(better_by), "baseline").differences()}
    assert set(rows) == {"1/4", "1/2", "1"}
    for r in rows.values():
        assert r["dice_diff"] == pytest.approx(better_by, abs=1e-9)
        assert r["run_ci_low"] < r["dice_diff"] < r["run_ci_high"]
        assert r["verdict"] == verdict
        assert (r["runs"], r["baseline_runs"], r["n_images"]) == (3, 3, len(IMAGES))


def test_an_unresolved_difference_says_how_many_runs_would_resolve_it_and_a_resolved_one_does_not():
    resolved = Comparison(_study(0.1), "baseline").differences()[0]
    open_ = Comparison(_study(0.0), "baseline").differences()[0]
    assert resolved["runs_to_resolve"] is None and resolved["runs_to_resolve_note"] == ""
    assert open_["runs_to_resolve"] is not None or open_["runs_to_resolve_note"]


def test_a_method_that_reaches_the_baseline_s_next_score_with_fewer_labels_saves_them():
    # PAT at n labels scores what the baseline scores at 2n: it needs half the labels
    cells = _study(0.1)
    sav = {r["baseline_labels"]: r for r in Comparison(cells, "baseline").savings(
        {(c["method"], c["fraction"]): c["labels"] for c in cells})}
    assert sav[8]["labels_needed"] == pytest.approx(4, abs=0.5) and sav[8]["saved_pct"] == pytest.approx(50, abs=6)
    assert sav[16]["labels_needed"] == pytest.approx(8, abs=1) and sav[16]["saved_pct"] == pytest.approx(50, abs=6)
    for r in sav.values():
        if r["labels_needed"] is not None and r["how"] != "at most":
            assert r["labels_low"] <= r["labels_needed"] <= (r["labels_high"] or np.inf)
    # at the smallest count the method is ahead already: only a bound, never an extrapolation
    assert sav[4]["how"] == "at most" and sav[4]["low_below"]


def test_a_method_that_never_reaches_the_baseline_needs_more_labels_than_were_measured():
    cells = _study(-0.15)
    sav = {r["baseline_labels"]: r for r in Comparison(cells, "baseline").savings(
        {(c["method"], c["fraction"]): c["labels"] for c in cells})}
    assert sav[16]["labels_needed"] is None and sav[16]["high_above"]
    assert fmt_labels(sav[16], 4, 16).startswith("not reached by 16")


def test_a_method_run_at_fewer_label_counts_is_read_over_the_counts_it_shares_with_the_baseline():
    # PAT measured at 4 and 8 labels only, where it scores what the baseline scores at twice the labels
    cells = [c for c in _study(0.1) if not (c["method"] == "PAT" and c["fraction"] == "1")]
    comparison = Comparison(cells, "baseline")
    sav = {r["baseline_labels"]: r for r in comparison.savings({(c["method"], c["fraction"]): c["labels"] for c in cells})}
    assert set(sav) == {4, 8} and {(r["smallest"], r["largest"]) for r in sav.values()} == {(4, 8)}
    assert sav[8]["labels_needed"] == pytest.approx(4, abs=0.5)
    assert comparison.savings_missing() == []


def test_a_method_at_one_label_count_of_the_baselines_has_no_saving_and_says_why():
    cells = [c for c in _study(0.1) if not (c["method"] == "PAT" and c["fraction"] != "1/4")]
    comparison = Comparison(cells, "baseline")
    assert comparison.savings({(c["method"], c["fraction"]): c["labels"] for c in cells}) == []
    [(method, why)] = comparison.savings_missing()
    assert method == "PAT" and "one label count" in why and "1/4" in why


@pytest.mark.parametrize("result, labels, saved", [
    ({"labels_needed": 4.0, "how": "at most", "labels_low": 4.0, "labels_high": 6.5, "low_below": True,
      "high_above": False, "saved_pct": 75.0, "saved_low": 59.4, "saved_high": 75.0, "baseline_labels": 16},
     "<= 4.0 [<= 4, 6.5]", "at least 75% [59%, >= 75%]"),
    ({"labels_needed": None, "how": "not reached", "labels_low": float("inf"), "labels_high": None,
      "low_below": False, "high_above": True, "saved_pct": None, "saved_low": None, "saved_high": None,
      "baseline_labels": 18}, "not reached by 18 [> 18, > 18]", "none (not reached by 18) [< 0%, < 0%]"),
    ({"labels_needed": 9.2, "how": "interpolated", "labels_low": 5.1, "labels_high": None, "low_below": False,
      "high_above": True, "saved_pct": 48.9, "saved_low": None, "saved_high": 71.7, "baseline_labels": 18},
     "9.2 [5.1, > 18]", "49% [< 0%, 72%]"),
])
def test_label_counts_and_savings_outside_the_measured_range_read_as_bounds(result, labels, saved):
    assert fmt_labels(result, 4, 18) == labels
    assert fmt_saved(result, 4, 18) == saved


def test_identical_runs_say_there_is_nothing_to_resolve():
    cells = _cells("baseline", "1", 16, 0.6, image_effect=IMAGE_EFFECT) + _cells("PAT", "1", 16, 0.6,
                                                                                image_effect=IMAGE_EFFECT)
    (r,) = Comparison(cells, "baseline").differences()
    assert (r["dice_diff"], r["run_ci_low"], r["run_ci_high"]) == (0, 0, 0)
    assert r["runs_to_resolve"] is None and r["runs_to_resolve_note"].startswith("nothing to resolve")
