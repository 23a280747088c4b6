"""Two-process DDP (CPU, gloo) against one process with the same global batch and seed."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from endopat.data.synth import SITES, SceneGenerator

TINY = "model:\n  features: [4, 4, 8, 8, 16, 4]\n  image_size: [32, 32]\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endopat(args, nproc=1):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if nproc == 1:
        cmd = [sys.executable, "-m", "endopat", *map(str, args)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={free_port()}", "-m", "endopat", *map(str, args)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four frames (one global batch) and four labeled frames per split."""
    root = tmp_path_factory.mktemp("ddp")
    gen = SceneGenerator(SITES["target"], 32, np.random.default_rng(0))
    for t in range(4):
        rgb, mask = gen.frame(t)
        (root / "frames").mkdir(exist_ok=True)
        Image.fromarray(rgb).save(root / "frames" / f"f{t}.png")
        for split in ("train", "val"):
            for sub, arr in (("images", rgb), ("masks", mask.astype(np.uint8) * 255)):
                (root / "labeled" / split / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / "labeled" / split / sub / f"v{split}_{t}.png")
    (root / "pre.yaml").write_text(TINY + "discriminator:\n  width: 0.125\n  norm: group\n"
                                   "accelerator: cpu\nsample_every: 100\nlog_every: 1\n")
    (root / "ft.yaml").write_text(TINY + "accelerator: cpu\nmin_samples_per_epoch: 4\n")
    return root


def outputs(path, frames_dir):
    """The checkpoint's U-Net output on the frames. Compared instead of raw weights: a conv bias
    followed by instance norm has a gradient of exactly zero in exact arithmetic, so Adam turns the
    float noise of its gradient into lr-sized steps of either sign, which change nothing downstream."""
    from endopat.checkpoints import load_checkpoint
    from endopat.networks import build_unet, prepare_input

    ckpt = load_checkpoint(path)
    mode = "L" if ckpt.in_channels == 1 else "Lab"  # a re-colorization generator sees L only
    unet = build_unet(ckpt.model, in_channels=1 if mode == "L" else 3)
    unet.load_state_dict(ckpt.state_dict)
    frames = np.stack([np.asarray(Image.open(p)) for p in sorted(frames_dir.glob("*.png"))])
    with torch.no_grad():
        return unet.eval()(prepare_input(torch.from_numpy(frames), mode))


def assert_same_function(a, b, data, atol=1e-3):
    worst = (outputs(a, data / "frames") - outputs(b, data / "frames")).abs().max().item()
    assert worst < atol, worst


def test_two_process_pretraining_equals_one_process_with_the_same_global_batch(data):
    common = ["pretrain", "-u", data / "frames", "-c", data / "pre.yaml", "--steps", 3, "--no-progress"]
    endopat([*common, "-o", data / "single", "--batch-size", 4])
    endopat([*common, "-o", data / "ddp", "--batch-size", 2, "--devices", 2, "--strategy", "ddp"], nproc=2)
    assert_same_function(data / "single" / "pretrained.pt", data / "ddp" / "pretrained.pt", data)
    # rank 0 alone wrote the outputs: one log with one row per step
    assert (data / "ddp" / "losses.csv").read_text().count("\n") == 1 + 3


def test_two_process_finetuning_equals_one_process_with_the_same_global_batch(data):
    common = ["finetune", "-d", data / "labeled", "-c", data / "ft.yaml", "--epochs", 3, "--no-progress",
              "--init", data / "single" / "pretrained.pt"]
    endopat([*common, "-o", data / "ft_single", "--batch-size", 4])
    endopat([*common, "-o", data / "ft_ddp", "--batch-size", 2, "--devices", 2, "--strategy", "ddp"], nproc=2)
    assert_same_function(data / "ft_single" / "best.pt", data / "ft_ddp" / "best.pt", data)
    assert (data / "ft_ddp" / "history.csv").read_text().count("\n") == 1 + 3


def test_two_process_finetuning_of_a_vit_runs_with_its_mask_token_unused(data):
    """DDP refuses a parameter without a gradient; a ViT's mask token is used by inpainting only."""
    (data / "vit.yaml").write_text("model: {arch: vit_s16, image_size: [32, 32], decoder_channels: [16, 8, 8, 8, 8]}\n"
                                   "accelerator: cpu\nmin_samples_per_epoch: 4\n")
    endopat(["finetune", "-d", data / "labeled", "-c", data / "vit.yaml", "--epochs", 2, "--no-progress",
             "-o", data / "vit_ddp", "--batch-size", 2, "--devices", 2, "--strategy", "ddp"], nproc=2)
    assert (data / "vit_ddp" / "history.csv").read_text().count("\n") == 1 + 2
