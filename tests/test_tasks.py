"""What every auxiliary task must do, checked for each registered task through the CLI."""

import pytest
import torch

from endopat.networks import ARCHS
from endopat.tasks import TASKS
from conftest import TINY_MODEL, run_cli

SECTIONS = "recolor:\n  discriminator: {width: 0.125}\n"


def _args(tmp_path, data, task, steps, name="pre"):
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(TINY_MODEL + SECTIONS + "checkpoint_every: 1\nsample_every: 2\n")
    return ["pretrain", "-u", data / "unlabeled", "-o", tmp_path / name, "-c", cfg, "--task", task,
            "--steps", steps, "--batch-size", 2, "--no-progress"]


@pytest.mark.parametrize("task", list(TASKS))
def test_fine_tuning_loads_every_pretrained_layer_but_the_ones_the_task_names(monkeypatch, capsys, tmp_path,
                                                                            tiny_data, task):
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, task, 2)) == 0
    ckpt = torch.load(tmp_path / "pre" / "pretrained.pt", weights_only=True)
    modules = list(ARCHS["basic_unet"].modules(TASKS[task].reinit))  # the task's groups, as module names
    assert ckpt["kind"] == "pretrained" and ckpt["task"] == task and ckpt["reinit"] == modules
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(TINY_MODEL + "min_samples_per_epoch: 4\n")
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft", "-c", cfg,
                   "--init", tmp_path / "pre" / "pretrained.pt", "--epochs", 1, "--no-progress") == 0
    report = (tmp_path / "ft" / "init_report.txt").read_text()
    assert "not loaded" not in report.replace("final_conv", "")  # only the task's own output layer differs
    segmenter = torch.load(tmp_path / "ft" / "best.pt", weights_only=True)["state_dict"]
    reinit = [k for k in segmenter if k.startswith(tuple(m + "." for m in modules))]
    kept = [k for k in segmenter if k not in reinit]
    assert f"loaded {len(kept) - ('inflated' in report)} tensors" in report
    assert f"re-initialised ({len(reinit)} tensors)" in report


@pytest.mark.parametrize("inflate, words", [("zero", "a/b kernels zero"), ("fresh", "a/b kernels freshly initialised")])
def test_a_recolorization_generator_hands_its_l_kernel_to_a_lab_segmenter_with_the_a_b_kernels_asked_for(
        monkeypatch, tmp_path, tiny_data, inflate, words):
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, "recolor", 1)) == 0
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(TINY_MODEL + f"min_samples_per_epoch: 2\ninflate: {inflate}\n")
    assert run_cli(monkeypatch, "finetune", "-d", tiny_data / "labeled", "-o", tmp_path / "ft", "-c", cfg,
                   "--init", tmp_path / "pre" / "pretrained.pt", "--epochs", 1, "--no-progress") == 0
    assert f"inflated (L kernel copied, {words})" in (tmp_path / "ft" / "init_report.txt").read_text()


@pytest.mark.parametrize("task", list(TASKS))
def test_a_killed_pretraining_resumes_as_the_same_run(monkeypatch, tmp_path, tiny_data, task, one_thread):
    cls = TASKS[task]
    step, calls = cls.step, []

    def dies_at_the_third_step(self, frames):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed in the middle of step 3
        return step(self, frames)

    monkeypatch.setattr(cls, "step", dies_at_the_third_step)
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, task, 4)) == 130  # "interrupted: ... resume"
    before = (tmp_path / "pre" / "losses.csv").read_text().splitlines()
    monkeypatch.setattr(cls, "step", step)
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, task, 4)) == 0
    after = (tmp_path / "pre" / "losses.csv").read_text().splitlines()
    assert after[:3] == before and [r.split(",")[0] for r in after[1:]] == ["1", "2", "3", "4"]


def test_an_unknown_task_is_a_one_line_error_listing_the_tasks(monkeypatch, capsys, tmp_path, tiny_data):
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, "jigsaw", 1)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown task 'jigsaw'" in err and "recolor, inpaint, contrastive" in err


@pytest.mark.parametrize("section, key", [("inpaint:\n  mask_ratio: 1.5\n", "'inpaint.mask_ratio'"),
                                          ("contrastive:\n  temprature: 0.1\n", "'contrastive.temprature'"),
                                          ("inpainting:\n  patch: 8\n", "'inpainting'")])
def test_a_bad_task_setting_is_a_one_line_error_naming_it(monkeypatch, capsys, tmp_path, tiny_data, section, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TINY_MODEL + section)
    assert run_cli(monkeypatch, "pretrain", "-u", tiny_data / "unlabeled", "-o", tmp_path / "r", "-c", cfg) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_draws_its_sample_figure(monkeypatch, tmp_path, tiny_data, task):
    from PIL import Image

    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, task, 2)) == 0
    with Image.open(tmp_path / "pre" / "samples" / "step_000002.png") as im:
        assert im.height >= 2 * 32 and im.width >= 4 * 32  # rows of 4 frames


def test_a_run_folder_of_one_task_refuses_to_resume_as_another(monkeypatch, capsys, tmp_path, tiny_data):
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, "inpaint", 1)) == 0
    assert run_cli(monkeypatch, *_args(tmp_path, tiny_data, "contrastive", 2)) == 2
    err = capsys.readouterr().err
    assert "holds a run of inpaint pretraining, not of contrastive pretraining" in err and err.count("\n") == 1
