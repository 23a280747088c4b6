"""Semi-supervised fine-tuning (endopat.semi): the losses, the teacher, the pairs, the views, and
fine-tuning with each method through the API and the CLI, killed and resumed."""

import csv
import json

import numpy as np
import pytest
import torch

from endopat import losses
from endopat.config import SEMI_METHODS, FinetuneConfig, SemiConfig
from endopat.semi import SEMI, perturb
from endopat.semi.unlabeled import Unlabeled, videos

from conftest import (KILLABLE_FINETUNE, TINY, TINY_STUDY, run_cli, run_script, same_weights, slow_or_shuffled_video_store,
                      three_class_folder)


def test_the_registry_and_the_config_name_the_same_methods():
    assert tuple(SEMI) == SEMI_METHODS


def test_the_consistency_loss_is_zero_when_student_and_teacher_agree():
    logits = torch.randn(2, 2, 8, 8)
    assert losses.consistency(logits, torch.softmax(logits, 1)).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.consistency(logits, torch.softmax(-logits, 1)).item() > 0


def test_pseudo_labels_below_the_threshold_are_ignored():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    target = torch.full((1, 2, 4, 4), 0.5)
    target[:, 1] = 0.9
    target[:, 0] = 0.1  # every pixel 90 % sure: below 0.95
    assert losses.pseudo_label(logits, target, 0.95).item() == 0.0
    target[0, 1, 0, 0], target[0, 0, 0, 0] = 0.99, 0.01  # one confident pixel
    loss = losses.pseudo_label(logits, target, 0.95)
    loss.backward()
    assert loss.item() > 0 and torch.count_nonzero(logits.grad.abs().sum(1)) == 1


def test_the_teacher_is_the_exponential_moving_average_of_the_student():
    student = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2))
    method = SEMI["mean_teacher"](SemiConfig(method="mean_teacher", ema=0.9), student)
    before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.add_(2.0)
    method.after_step(student)
    for k, v in method.teacher.state_dict().items():
        s = student.state_dict()[k]
        want = s if not v.dtype.is_floating_point else 0.9 * before[k] + 0.1 * s
        assert torch.allclose(v, want), k


@pytest.fixture
def store(tmp_path):
    from endopat.data.frames import build_store
    from endopat.io import write_png

    rng = np.random.default_rng(0)
    for video, n in (("vidA", 5), ("vidB", 4)):
        for f in range(n):
            write_png(tmp_path / "frames" / f"{video}_f{f:03d}.png", rng.integers(0, 255, (16, 16, 3), np.uint8))
    return build_store(tmp_path / "frames", tmp_path / "store", (16, 16), log=lambda *a: None)


def test_a_temporal_pair_is_two_frames_of_one_video_gap_frames_apart(store):
    from endopat.networks import prepare_input

    vid = videos(store)
    assert list(vid) == [0] * 5 + [1] * 4
    pairs = Unlabeled(store, "Lab", 64, gap=2)
    first = pairs.draw()
    assert set(first) == {0, 1, 2, 5, 6}  # never across the two videos, never past a video's end
    pairs.load_state_dict({"generator": torch.Generator().manual_seed(104729).get_state()})
    a, b = pairs.next()
    frames = lambda idx: prepare_input(torch.from_numpy(np.stack([store[int(i)] for i in idx])), "Lab")  # noqa: E731
    assert torch.equal(a, frames(first)) and torch.equal(b, frames(first + 2))


@pytest.mark.parametrize("shuffled, low, high", [(False, 0.0, 0.5), (True, 0.8, 1.2)])
def test_neighbours_of_a_slow_video_are_more_alike_than_random_frames_and_shuffled_ones_are_not(
        tmp_path, shuffled, low, high):
    from endopat.semi.unlabeled import neighbour_likeness

    assert low <= neighbour_likeness(slow_or_shuffled_video_store(tmp_path, shuffled), gap=1) <= high


def test_temporal_fine_tuning_warns_when_its_pairs_are_no_more_alike_than_random_frames(tiny_data, tmp_path):
    from endopat.data.readers import open_labeled
    from endopat.finetune import finetune

    slow_or_shuffled_video_store(tmp_path, shuffled=True)
    parts = open_labeled(tiny_data / "labeled")
    cfg = {"model": TINY, "epochs": 1, "min_samples_per_epoch": 4, "batch_size": 2,
           "semi": {"method": "temporal", "unlabeled": str(tmp_path / "frames"), "batch_size": 2}}
    lines = []
    finetune(parts["train"], parts["val"], tmp_path / "run", FinetuneConfig.model_validate(cfg), progress=False,
             log=lines.append)
    assert any(line.startswith("temporal pairs 2 frames apart") and "warning: no more alike" in line for line in lines)


def test_cutmix_mixes_a_frame_and_its_target_in_the_same_box():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(4.0)[:, None, None, None].expand(4, 3, 8, 8).clone()
    box, partner = perturb.cutmix_boxes(x, 1.0, g)
    mixed_x, mixed_t = perturb.mix(x, box, partner), perturb.mix(x[:, :2], box, partner)
    assert box.any() and torch.equal(mixed_x[:, :2], mixed_t)
    assert torch.equal(mixed_x[box.expand_as(x)], x[partner][box.expand_as(x)])


def test_colour_jitter_stays_in_the_normalised_range_and_blur_keeps_the_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    y = perturb.blur(perturb.jitter(x, 1.0, g), 1.0, g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


@pytest.mark.parametrize("method", SEMI_METHODS)
def test_fine_tuning_with_each_method_uses_the_unlabeled_frames_and_logs_their_loss(tiny_data, tmp_path, method):
    from endopat.data.readers import open_labeled
    from endopat.finetune import finetune

    parts = open_labeled(tiny_data / "labeled")
    base = {"model": TINY, "epochs": 2, "min_samples_per_epoch": 4, "batch_size": 2, "early_stop_patience": None}
    sup = finetune(parts["train"], parts["val"], tmp_path / "sup", FinetuneConfig.model_validate(base),
                   progress=False, log=lambda *a: None)
    semi = {"method": method, "unlabeled": str(tiny_data / "unlabeled"), "batch_size": 2, "ramp_up": 0,
            "threshold": 0.51, "fps": 5.0}
    best = finetune(parts["train"], parts["val"], tmp_path / method, FinetuneConfig.model_validate(
        {**base, "semi": semi}), progress=False, log=lambda *a: None)
    assert (tmp_path / method / "unlabeled" / "store.json").is_file()
    assert not same_weights(sup, best)  # the unlabeled loss moved the weights
    logged = [[r["unlabeled_loss"] for r in csv.DictReader((run / "history.csv").read_text().splitlines())]
              for run in (sup.parent, best.parent)]
    assert logged[0] == ["", ""] and all(float(v) >= 0 for v in logged[1]) and float(logged[1][-1]) > 0


@pytest.mark.parametrize("method", SEMI_METHODS)
def test_each_method_fine_tunes_a_three_class_model_with_an_ignore_id(tmp_path, method):

    from endopat.data.readers import open_labeled
    from endopat.finetune import finetune

    root = three_class_folder(tmp_path)
    parts = open_labeled(root)
    cfg = FinetuneConfig.model_validate({
        "model": TINY, "epochs": 1, "min_samples_per_epoch": 4, "batch_size": 2, "early_stop_patience": None,
        "semi": {"method": method, "unlabeled": str(root / "synth" / "unlabeled"), "batch_size": 2, "ramp_up": 0,
                 "threshold": 0.51, "fps": 10.0}})
    best = finetune(parts["train"], parts["val"], tmp_path / method, cfg, progress=False, log=lambda *a: None)
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["labels"]["names"] == ["background", "left", "right"]
    assert [v for k, v in ckpt["state_dict"].items() if k.startswith("final_conv") and k.endswith("weight")][-1].shape[0] == 3


@pytest.mark.parametrize("arch, method", [("vit_s16_dinov3", "fixmatch"), ("pvt_v2_b2", "mean_teacher"),
                                          ("vit_s16_dinov3", "temporal"), ("caformer_s18_relu", "fixmatch")])
def test_a_semi_supervised_method_runs_on_a_2026_foundation_family(tiny_data, tmp_path, arch, method):
    from endopat.data.readers import open_labeled
    from endopat.finetune import finetune

    parts = open_labeled(tiny_data / "labeled")
    cfg = FinetuneConfig.model_validate({
        "model": {"arch": arch, "image_size": [32, 32], "decoder_channels": [16, 8, 8, 8, 8]}, "epochs": 1,
        "min_samples_per_epoch": 2, "batch_size": 2,
        "semi": {"method": method, "unlabeled": str(tiny_data / "unlabeled"), "batch_size": 2, "ramp_up": 0,
                 "threshold": 0.51, "fps": 5.0}})
    best = finetune(parts["train"], parts["val"], tmp_path / "ft", cfg, progress=False, log=lambda *a: None)
    assert torch.load(best, weights_only=True)["model"]["arch"] == arch


SEMI_SETTINGS = json.dumps({"semi": {"method": "fixmatch", "batch_size": 2, "ramp_up": 3, "threshold": 0.51, "fps": 5.0},
                   "epochs": 4})


def test_a_semi_supervised_run_killed_and_resumed_is_the_same_run(tiny_data, tmp_path):
    semi = json.loads(SEMI_SETTINGS)
    semi["semi"]["unlabeled"] = str(tiny_data / "unlabeled")
    extra = json.dumps(semi)
    assert run_script(KILLABLE_FINETUNE, tiny_data / "labeled", tmp_path / "whole", 0, extra).returncode == 0
    killed = run_script(KILLABLE_FINETUNE, tiny_data / "labeled", tmp_path / "killed", 3, extra)  # in epoch 3, after 2 saved
    assert killed.returncode == -9, killed.stderr
    assert run_script(KILLABLE_FINETUNE, tiny_data / "labeled", tmp_path / "killed", 0, extra).returncode == 0
    assert same_weights(tmp_path / "whole" / "best.pt", tmp_path / "killed" / "best.pt")
    assert (tmp_path / "whole" / "history.csv").read_text() == (tmp_path / "killed" / "history.csv").read_text()


def test_the_cli_hands_semi_and_unlabeled_to_fine_tuning(tiny_data, tmp_path, monkeypatch, capsys):
    code = run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "mt", "--semi",
                   "mean_teacher", "--unlabeled", tiny_data / "unlabeled", "--epochs", 1, "--image-size", 32,
                   "--no-progress")
    assert code == 0, capsys.readouterr().err
    assert "semi-supervised: mean_teacher" in capsys.readouterr().out
    code = run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "x", "--semi", "bogus",
                   "--unlabeled", tiny_data / "unlabeled")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "semi.method" in err


def test_a_study_puts_semi_supervised_pretrained_and_both_rows_against_one_baseline(tmp_path):
    import json

    from endopat.study.config import study_from_dict
    from endopat.study.runner import run_study

    semi = {"method": "mean_teacher", "source": "target", "batch_size": 2, "ramp_up": 0, "fps": 5.0}
    cfg = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "subsets": 1,
           "overlays": 0, "methods": [{"name": "baseline"}, {"name": "PAT", "pretrain": "target"},
                                      {"name": "mean teacher", "semi": semi},
                                      {"name": "PAT + mean teacher", "pretrain": "target", "semi": semi}]}
    out = tmp_path / "run"
    assert run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None)["cells"] == 4
    stores = list((out / "sources" / "target").glob("store-*/store.json"))
    assert len(stores) == 1  # decoded once, shared by both semi-supervised rows
    for slug in ("mean-teacher", "pat-mean-teacher"):
        provenance = torch.load(out / "cells" / slug / "f1-2_s0" / "run" / "best.pt", weights_only=True)["provenance"]
        assert provenance["finetune"]["semi"]["unlabeled"] == str(stores[0].parent)
    table = (out / "report" / "table1.csv").read_text()
    assert all(name in table for name in ("mean teacher", "PAT + mean teacher"))
    assert json.loads((out / "study.json").read_text())["methods"][2]["semi"]["method"] == "mean_teacher"


def test_a_study_whose_only_use_of_a_source_is_semi_supervised_prepares_it(tmp_path):
    import json

    from endopat.study.config import study_from_dict
    from endopat.study.runner import run_study

    semi = {"method": "fixmatch", "source": "target", "batch_size": 2, "ramp_up": 0, "threshold": 0.51, "fps": 5.0}
    cfg = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "subsets": 1,
           "overlays": 0, "methods": [{"name": "baseline"}, {"name": "fixmatch", "semi": semi}]}
    out = tmp_path / "run"
    assert run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None)["cells"] == 2
    overlap = json.loads((out / "sources" / "target" / "overlap.json").read_text())["overlap"]
    assert overlap["setting"] == "exclude" and not (out / "stages").exists()
    assert "fixmatch" in (out / "report" / "table1.csv").read_text()
    assert "The unlabeled term (semi-supervised rows)" in (out / "report" / "report.md").read_text()


def test_a_method_s_semi_source_must_be_an_unlabeled_source():
    from endopat.errors import EndopatError
    from endopat.study.config import study_from_dict

    with pytest.raises(EndopatError, match="semi source 'nope' is not in unlabeled"):
        study_from_dict({**TINY_STUDY, "methods": [{"name": "baseline"},
                                             {"name": "x", "semi": {"method": "fixmatch", "source": "nope"}}]})
