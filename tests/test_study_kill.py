"""A study killed (SIGKILL) at random moments in each of its phases resumes to the same Table 1."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

STUDY = {
    "name": "kill",
    "synth": [{"out": "data/t", "site": "target", "size": 48, "videos": 3, "unlabeled_videos": 1, "frames": 12,
               "label_every": 2}],
    "labeled": {"path": "data/t/labeled"},
    "fractions": ["1", "1/2"],
    "subsets": 1,
    "unlabeled": {"target": "data/t/unlabeled"},
    "methods": [{"name": "baseline"}, {"name": "PAT", "pretrain": "target"}],
    "model": {"features": [4, 4, 8, 8, 16, 4], "image_size": [32, 32]},
    "pretrain": {"steps": 6, "batch_size": 2, "checkpoint_every": 1, "sample_every": 2,
                 "recolor": {"discriminator": {"width": 0.125}}},
    "finetune": {"epochs": 3, "min_samples_per_epoch": 4},
    "overlays": 2,
}

# the phases, each told by the first file it writes: kill when it appears (plus a random delay)
PHASES = [("its data", "data/t/labeled/train/images/*.png"),
          ("a frame store", "stages/pretrain/target/frames/frames.u8"),
          ("the pretraining stage", "stages/pretrain/target/last.pt"),
          ("a cell", "cells/*/*/run/history.csv"),
          ("the report", "report/*")]


def _study(config, out) -> subprocess.Popen:
    code = "import sys; from endopat.cli import main; sys.argv[0] = 'endopat'; main()"
    return subprocess.Popen([sys.executable, "-c", code, "study", str(config), "-o", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def _kill_when(proc: subprocess.Popen, out, pattern: str, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` s after a file matching ``pattern`` appears; False if it ended first."""
    while proc.poll() is None:
        if next(out.glob(pattern), None) is not None:
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            break
        time.sleep(0.005)
    return False


@pytest.mark.slow
def test_a_study_killed_in_each_phase_resumes_to_an_identical_table(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(STUDY))
    ref = _study(config, tmp_path / "whole")
    assert ref.wait() == 0, ref.stderr.read()
    out, rng, killed = tmp_path / "killed", np.random.default_rng(0), []
    for phase, pattern in PHASES:
        proc = _study(config, out)
        if _kill_when(proc, out, pattern, float(rng.uniform(0, 0.3))):
            killed.append(phase)
        elif proc.returncode != 0:
            pytest.fail(f"run stopped in {phase}: {proc.stderr.read()}")
    assert len(killed) >= 4, killed  # the report phase may finish before its kill lands
    last = _study(config, out)
    assert last.wait() == 0, last.stderr.read()
    assert (out / "report" / "table1.csv").read_bytes() == (tmp_path / "whole" / "report" / "table1.csv").read_bytes()
    assert not list(out.rglob("*.endopat-tmp*")), "a leftover temporary file"
