"""The training-loop skeleton: a run killed at any moment and resumed is the same run, bit for bit."""

import pytest
import torch

from endopat.tasks import TASKS
from conftest import KILLABLE_FINETUNE, TINY, run_script, same_weights


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
""" % {"model": TINY}

@pytest.mark.parametrize("task", list(TASKS))
def test_pretraining_killed_mid_epoch_and_resumed_gives_the_uninterrupted_weights(tmp_path, tiny_data, task):
    src = tiny_data / "unlabeled"
    assert run_script(PRETRAIN, task, src, tmp_path / "whole", 0).returncode == 0
    killed = run_script(PRETRAIN, task, src, tmp_path / "killed", 6)  # last save at step 4, in the 2nd epoch
    assert killed.returncode == -9, killed.stderr
    assert run_script(PRETRAIN, task, src, tmp_path / "killed", 0).returncode == 0
    assert same_weights(tmp_path / "whole" / "pretrained.pt", tmp_path / "killed" / "pretrained.pt")
    assert (tmp_path / "whole" / "losses.csv").read_text() == (tmp_path / "killed" / "losses.csv").read_text()


def test_fine_tuning_killed_and_resumed_gives_the_uninterrupted_weights(tmp_path, tiny_data):
    data = tiny_data / "labeled"
    assert run_script(KILLABLE_FINETUNE, data, tmp_path / "whole", 0).returncode == 0
    killed = run_script(KILLABLE_FINETUNE, data, tmp_path / "killed", 4)  # in epoch 4, after 3 saved epochs
    assert killed.returncode == -9, killed.stderr
    assert run_script(KILLABLE_FINETUNE, data, tmp_path / "killed", 0).returncode == 0
    assert same_weights(tmp_path / "whole" / "best.pt", tmp_path / "killed" / "best.pt")
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


RESUMABLE = ["finetune", "finetune-fixmatch", "recolor", "inpaint", "contrastive"]


def _finished_runs(out, data):
    """A finished run of each kind (fine-tuning 2 epochs, with and without unlabeled frames;
    each pretraining task 3 steps, saved mid-epoch) and how to resume it one step further."""
    from endopat.config import FinetuneConfig
    from endopat.data.readers import open_labeled
    from endopat.finetune import finetune
    from endopat.pretrain import pretrain
    from endopat.tasks.config import PretrainConfig

    parts, quiet = open_labeled(data / "labeled"), {"progress": False, "log": lambda *a: None}
    ft = {"model": TINY, "min_samples_per_epoch": 4, "batch_size": 4, "early_stop_patience": None}
    semi = {"semi": {"method": "fixmatch", "unlabeled": str(data / "unlabeled"), "batch_size": 2, "ramp_up": 0,
                     "threshold": 0.51, "fps": 5.0}}
    pre = {"model": TINY, "batch_size": 2, "checkpoint_every": 3, "recolor": {"discriminator": {"width": 0.125}}}

    def finetuning(extra):
        return lambda o, n: finetune(parts["train"], parts["val"], o,
                                     FinetuneConfig.model_validate({**ft, **extra, "epochs": n}), **quiet)

    def pretraining(task):
        return lambda o, n: pretrain(data / "unlabeled", o,
                                     PretrainConfig.model_validate({**pre, "task": task, "steps": n + 1}), **quiet)

    runs = {"finetune": finetuning({}), "finetune-fixmatch": finetuning(semi),
            **{task: pretraining(task) for task in RESUMABLE[2:]}}
    for kind, run in runs.items():
        run(out / kind, 2)
    return runs


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("finished")
    return out, _finished_runs(out, tiny_data)


@pytest.mark.parametrize("kind", RESUMABLE)
def test_a_resume_state_with_any_value_in_any_field_resumes_or_ends_in_one_line(tmp_path, finished_runs, kind):
    import shutil

    from endopat.checkpoints import save_atomic
    from conftest import FIELD_VALUES, ends_in_one_line, replaced

    done, runs = finished_runs
    state = torch.load(done / kind / "last.pt", weights_only=True)
    assert kind.startswith("finetune") or "epoch" in state  # mid-epoch: the loader's place is saved too
    fields = [(k,) for k in state] + [(k, j) for k, v in state.items() if isinstance(v, dict) for j in v]
    resumed = 0
    for i, field in enumerate(fields):
        # three of the eight odd values a field, in turn, so each value meets 3/8 of the fields: all
        # eight on every field made the five kinds take 114 s of the suite's 15 minutes
        for value in (FIELD_VALUES[(i + k) % len(FIELD_VALUES)] for k in range(3)):
            out = tmp_path / "run"
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(done / kind, out)
            save_atomic(replaced(state, field, value), out / "last.pt")
            resumed += ends_in_one_line(lambda: runs[kind](out, 3), out / "last.pt", f"{'.'.join(field)}={value!r}")
    assert resumed > 0  # some damage is harmless (a history that is gone), and those runs go on
