"""The training-loop skeleton: a run killed at any moment and resumed is the same run, bit for bit."""

import os
import subprocess
import sys

import pytest
import torch

from endopat.tasks import TASKS
from test_cli import tiny_data  # noqa: F401  (the fixture)

MODEL = {"features": [4, 4, 8, 8, 16, 4], "image_size": [32, 32]}

# a real process, killed with SIGKILL at the start of a given step (or fine-tuning epoch)
PRETRAIN = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from endopat.tasks.config import PretrainConfig
from endopat.pretrain import pretrain
from endopat.tasks import TASKS
task, src, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cls, calls = TASKS[task], []
step = cls.step
def step_or_die(self, batch):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, batch)
cls.step = step_or_die
cfg = PretrainConfig.model_validate({"task": task, "model": %(model)r, "steps": 7, "batch_size": 2,
    "checkpoint_every": 2, "sample_every": 3, "recolor": {"discriminator": {"width": 0.125}},
    "contrastive": {"temporal_window": 2}})
pretrain(src, out, cfg, progress=False, log=lambda *a: None)
""" % {"model": MODEL}

FINETUNE = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
import endopat.finetune as ft
from endopat.config import FinetuneConfig
from endopat.data.readers import open_labeled
data, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}  # more settings (tests/test_semi.py)
epoch, calls = ft._train_epoch, []
def epoch_or_die(*a, **k):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return epoch(*a, **k)
ft._train_epoch = epoch_or_die
parts = open_labeled(data)
cfg = FinetuneConfig.model_validate({"model": %(model)r, "epochs": 5, "min_samples_per_epoch": 6,
    "batch_size": 4, "augment": {"rotate": True, "gain": 0.2}, "early_stop_patience": None, **extra})
ft.finetune(parts["train"], parts["val"], out, cfg, progress=False, log=lambda *a: None)
""" % {"model": MODEL}


def _run(script, *args):
    # one thread, as the script asks: make_fabric sets torch's threads to the cores unless OMP_NUM_THREADS
    # is set, and with 2 threads on a loaded machine two uninterrupted runs already differ by ~1e-5
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _same_weights(a, b):
    wa, wb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("task", list(TASKS))
def test_pretraining_killed_mid_epoch_and_resumed_gives_the_uninterrupted_weights(tmp_path, tiny_data, task):
    src = tiny_data / "unlabeled"
    assert _run(PRETRAIN, task, src, tmp_path / "whole", 0).returncode == 0
    killed = _run(PRETRAIN, task, src, tmp_path / "killed", 6)  # last save at step 4, in the 2nd epoch
    assert killed.returncode == -9, killed.stderr
    assert _run(PRETRAIN, task, src, tmp_path / "killed", 0).returncode == 0
    assert _same_weights(tmp_path / "whole" / "pretrained.pt", tmp_path / "killed" / "pretrained.pt")
    assert (tmp_path / "whole" / "losses.csv").read_text() == (tmp_path / "killed" / "losses.csv").read_text()


def test_fine_tuning_killed_and_resumed_gives_the_uninterrupted_weights(tmp_path, tiny_data):
    data = tiny_data / "labeled"
    assert _run(FINETUNE, data, tmp_path / "whole", 0).returncode == 0
    killed = _run(FINETUNE, data, tmp_path / "killed", 4)  # in epoch 4, after 3 saved epochs
    assert killed.returncode == -9, killed.stderr
    assert _run(FINETUNE, data, tmp_path / "killed", 0).returncode == 0
    assert _same_weights(tmp_path / "whole" / "best.pt", tmp_path / "killed" / "best.pt")
    assert (tmp_path / "whole" / "history.csv").read_text() == (tmp_path / "killed" / "history.csv").read_text()


def test_logged_scalars_are_the_mean_over_each_log_interval_and_a_save_logs_what_is_pending(tmp_path):
    from endopat.tasks.config import PretrainConfig
    from endopat.runtime import TrainingRun

    run = TrainingRun(PretrainConfig(accelerator="cpu"), tmp_path, ["step", "loss"], progress=False,
                      log=lambda *a: None)
    returned = [run.record({"step": i, "loss": torch.tensor(float(i))}, every=2) for i in range(1, 6)]
    assert [r is None for r in returned] == [True, False, True, False, True]
    run.save(5)
    assert run.history == [{"step": 2, "loss": 1.5}, {"step": 4, "loss": 3.5}, {"step": 5, "loss": 5.0}]
