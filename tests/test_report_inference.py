import numpy as np
import pytest

from endopat.report.bootstrap import Run
from endopat.report.compare import Comparison
from endopat.report.inference import estimate, plan

IMAGES = np.random.default_rng(3).normal(0.7, 0.1, 30)


def _runs(method, level, subsets=2, pretrains=1, seeds=1, subset_effect=(), pretrain_effect=(), noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(subsets):
        for p in range(pretrains):
            for r in range(seeds):
                shift = level + (subset_effect[s] if subset_effect else 0) + (pretrain_effect[p] if pretrain_effect else 0)
                out.append(Run(method, "1/4", s, p, r, IMAGES + shift + rng.normal(0, noise, IMAGES.size)))
    return out


def test_a_subset_effect_both_methods_share_cancels():
    est = estimate(_runs("pat", 0.05, 3, subset_effect=(0, 0.2, -0.1)), _runs("base", 0, 3, subset_effect=(0, 0.2, -0.1)))
    assert est.diff == pytest.approx(0.05) and est.interval() == pytest.approx((0.05, 0.05))


def test_a_pretraining_run_effect_the_same_in_every_subset_widens_the_interval():
    flat = estimate(_runs("pat", 0.05, 2, 2), _runs("base", 0, 2))
    shifted = estimate(_runs("pat", 0.05, 2, 2, pretrain_effect=(-0.05, 0.05)), _runs("base", 0, 2))
    assert flat.variance == pytest.approx(0) and shifted.variance > 0
    assert shifted.shares()["pretrain"] == pytest.approx(shifted.variance)


def test_two_units_at_a_level_give_the_interval_one_degree_of_freedom():
    est = estimate(_runs("pat", 0.05, 2, 2, seeds=2, noise=0.05), _runs("base", 0, 2, seeds=2, noise=0.05, seed=1))
    assert est.df == 1
    lo, hi = est.interval()
    assert (hi - lo) / 2 == pytest.approx(12.706 * np.sqrt(est.variance), rel=1e-3)


def test_one_run_on_each_side_with_one_subset_is_not_resolved_and_says_why():
    cells = [{"method": r.method, "fraction": "1", "subset": 0, "pretrain_rep": 0, "repeat": 0, "labels": 40,
              "rows": [{"id": str(i), "dice": float(v), "iou": float(v)} for i, v in enumerate(r.scores)]}
             for r in _runs("pat", 0.2, 1) + _runs("base", 0.0, 1)]
    [row] = Comparison(cells, "base").differences()
    assert row["verdict"].startswith("not resolved") and "one run" in row["verdict"]


def test_runs_to_resolve_never_ask_for_more_disjoint_subsets_than_the_pool_holds():
    effect = (0.06, -0.04)  # subset x method dominates: only more subsets would resolve it
    est = estimate(_runs("pat", 0.04, 2, subset_effect=effect, seeds=2, noise=0.001),
                   _runs("base", 0.0, 2, seeds=2, noise=0.001, seed=1))
    design, how = plan(est, max_subsets=4)
    assert design is None and "4 disjoint label subsets" in how
    design, how = plan(est, max_subsets=None)
    assert design is not None and design[0] > 4 and how == "estimate"


def test_with_two_subsets_more_seeds_alone_never_resolve_since_the_subsets_give_one_degree_of_freedom():
    est = estimate(_runs("pat", 0.03, 2, seeds=2, noise=0.03), _runs("base", 0.0, 2, seeds=2, noise=0.03, seed=1))
    assert plan(est, max_subsets=2)[0] is None
    design, how = plan(est, max_subsets=8)
    assert how == "estimate" and 2 < design[0] <= 8
