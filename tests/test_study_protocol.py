from pathlib import Path

import pytest

from endopat.data.splits import validation_subset
from endopat.labels import Labels
from endopat.study.config import load_study, study_from_dict
from endopat.study.protocol import BINARY_OUTPUT, FIXED, deviations

BASE = {"labeled": {"path": "x"}, "unlabeled": {"target": "videos"}, "methods": [{"name": "baseline"}],
        "subsets": 5, "fractions": ["1", "1/2", "1/4", "1/8", "1/16"],
        "finetune": {"early_stop_patience": None}}


def test_protocol_paper_sets_each_part_the_config_leaves_unset():
    cfg = study_from_dict({**BASE, "protocol": "paper"})
    assert cfg.model.input == "L" and cfg.validation == "subsets"
    assert (cfg.finetune.augment.flips, cfg.supervised.augment.flips) == (False, False)
    assert cfg.unlabeled["target"].test_frames == "keep"


def test_under_the_paper_s_protocol_only_what_no_setting_changes_is_listed():
    assert deviations(study_from_dict({**BASE, "protocol": "paper"})) == FIXED


def test_a_part_set_in_the_config_wins_over_the_protocol_and_is_named_as_a_deviation():
    cfg = study_from_dict({**BASE, "protocol": "paper", "model": {"input": "Lab"},
                           "unlabeled": {"target": {"path": "v", "test_frames": "exclude"}}})
    assert cfg.model.input == "Lab" and cfg.unlabeled["target"].test_frames == "exclude"
    found = deviations(cfg)
    assert any(d.startswith("segmenter input Lab") for d in found)
    assert any("'target' leaves the test split's frames out" in d for d in found)


def test_endopat_s_recipe_names_each_of_its_differences_from_the_paper():
    found = deviations(study_from_dict(BASE))
    for start in ("segmenter input Lab", "finetune augmentation: flips", "pretraining source 'target'",
                  "every cell validates on the whole validation split"):
        assert any(d.startswith(start) for d in found), start


def test_a_multi_class_study_names_its_classes_and_loss_instead_of_the_binary_output():
    cfg = study_from_dict({**BASE, "protocol": "paper", "finetune": {"early_stop_patience": None, "loss": "dice_ce"}})
    found = deviations(cfg, Labels(("background", "gallbladder", "tool")))
    assert found[0] == ("segmentation target: 3 classes (background, gallbladder, tool), a softmax over them "
                        "(the paper: instrument against background)")
    assert any(d.startswith("fine-tuning loss: cross-entropy + soft Dice") for d in found)
    assert BINARY_OUTPUT not in found and BINARY_OUTPUT in deviations(cfg)


@pytest.mark.parametrize("fraction, size, count", [("1/4", 10, 4), ("1/8", 5, 8), ("1", 40, 1)])
def test_validation_subsets_are_the_fraction_s_share_disjoint_across_subsets(fraction, size, count):
    val = [f"OP2_{i:02d}" for i in range(40)]
    parts = [validation_subset(val, fraction, s) for s in range(count)]
    assert all(len(p) == size for p in parts)
    assert len(set().union(*map(set, parts))) == size * count
    assert validation_subset(val, fraction, count) == parts[0]  # beyond the disjoint ones: wraps around


def test_the_protocol_configs_on_the_dev_set_differ_only_in_the_protocol_and_their_own_rows(monkeypatch):
    monkeypatch.setenv("ENDOPAT_SHARED_DATA", "/data")
    root = Path(__file__).parents[1] / "examples"
    paper, recipe = load_study(root / "endovis15-dev-paper.yaml"), load_study(root / "endovis15-dev-recipe.yaml")
    assert (paper.protocol, recipe.protocol) == ("paper", "endopat")
    same = ("seed", "test_groups", "val_groups", "fractions", "subsets", "finetune_seeds", "pretrain_seeds")
    assert all(getattr(paper, k) == getattr(recipe, k) for k in same)
    # the protocol comparison's rows are the same; the paper's config adds the hypothesis rows, the
    # recipe's the semi-supervised ones (issue 32)
    assert [m.name for m in recipe.methods][:3] == [m.name for m in paper.methods][:3]
    assert all(m.semi is not None for m in recipe.methods[3:]) and all(m.semi is None for m in paper.methods)
    assert paper.model.input == "L" and recipe.model.input == "Lab"
    assert paper.unlabeled["target"].test_frames == "keep" and recipe.unlabeled["target"].test_frames == "exclude"


def test_a_cell_validates_on_its_own_subset_under_validation_subsets_and_on_the_whole_split_otherwise():
    from endopat.data.splits import Split
    from endopat.study.grid import Cell, validation_ids

    split = Split([f"t{i}" for i in range(16)], [f"v{i}" for i in range(16)], ["x"], {})
    whole, paper = study_from_dict(BASE), study_from_dict({**BASE, "validation": "subsets"})
    cell = lambda s: Cell(0, whole.methods[0], "1/4", s)  # noqa: E731
    assert validation_ids(whole, split, cell(0)) == split.val
    a, b = validation_ids(paper, split, cell(0)), validation_ids(paper, split, cell(1))
    assert len(a) == len(b) == 4 and not set(a) & set(b)
