"""Per auxiliary task: the real pretraining loop against the bare model step, and peak memory.

For each task of the registry, in one run on the same machine:

1. full step: ``endopat.pretrain.pretrain`` on a frame store (loader, colour conversion, the task's
   masking or augmentation, logging, all-reduce; checkpoints at the end only) -- timed as the
   difference between a run of ``LONG`` and one of ``SHORT`` steps, so set-up and the final save do
   not count;
2. bare step: the same networks' forward, backward and optimizer step on pre-made tensors;
3. their ratio (goal >= 0.95) and the peak RSS of a fresh process pretraining 10 steps.

Full and bare timings alternate ``--repeats`` times, and the ratio of each pair is reported as the
median with its range: on a shared machine the speed drifts by +-20 % over minutes, more than the
goal's margin, and a pair measured side by side cancels most of the drift.

Usage: python bench/tasks.py [--size 128] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, rate  # noqa: E402
from pretrain import make_store  # noqa: E402

SHORT, LONG, BATCH = 4, 24, 8


def bare_steps(task: str, model, x: torch.Tensor):
    """A callable doing one bare training step of ``task``'s networks on ``x`` (B, 3, H, W)."""
    from endopat.networks import Colorizer, Discriminator, build_unet
    from endopat.tasks.contrastive import Contrastive, Projector
    from endopat.tasks.recolor import RecolorSettings

    if task == "recolor":
        G, D = Colorizer(model), Discriminator(RecolorSettings().discriminator)
        og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())

        def step():
            fake = G(x[:, :1])
            d = D(torch.cat([x, torch.cat([x[:, :1], fake.detach()], 1)]))
            od.zero_grad(); d.mean().backward(); od.step()
            D.requires_grad_(False)
            og.zero_grad(); D(torch.cat([x, torch.cat([x[:, :1], fake], 1)])).mean().backward(); og.step()
            D.requires_grad_(True)
    elif task == "inpaint":
        net = build_unet(model, out_channels=model.in_channels)
        opt = torch.optim.Adam(net.parameters())

        def step():
            opt.zero_grad(); (net(x) - x).abs().mean().backward(); opt.step()
    else:
        net = Contrastive(build_unet(model), Projector(model.features[4], 64))
        opt = torch.optim.Adam(net.parameters())
        xx = torch.cat([x, x])

        def step():
            opt.zero_grad(); net(xx).pow(2).mean().backward(); opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from endopat.config import ModelConfig
    from endopat.tasks.config import PretrainConfig
    from endopat.pretrain import pretrain
    from endopat.tasks import TASKS

    tmp = Path(tempfile.mkdtemp())
    model = ModelConfig(image_size=(args.size, args.size))
    imgs = make_store(tmp / "imgs", 200)
    quiet = dict(progress=False, log=lambda *a: None)
    print(f"{args.size}x{args.size}, batch {BATCH}, {args.threads} threads, input {model.input}, widths {model.features}")
    print("| task | full loop img/s | bare step img/s | ratio (goal >= 0.95), median [range] | peak RSS MiB |")
    print("|---|---|---|---|---|")
    pretrain(imgs, tmp / "warm", PretrainConfig(model=model, steps=1, accelerator="cpu"), **quiet)  # decodes once
    for task in TASKS:
        cfg = PretrainConfig(model=model, task=task, batch_size=BATCH, sample_every=10**6, checkpoint_every=10**6,
                             accelerator="cpu")
        x = torch.rand(BATCH, 3, args.size, args.size) * 2 - 1
        step = bare_steps(task, model, x if task == "recolor" else x[:, : model.in_channels])
        fulls, bares = [], []
        for r in range(args.repeats):
            times = []
            for steps in (SHORT, LONG):
                t = time.perf_counter()
                pretrain(tmp / "warm" / "frames", tmp / f"{task}-{steps}-{r}", cfg.model_copy(update={"steps": steps}),
                         **quiet)
                times.append(time.perf_counter() - t)
            fulls.append((LONG - SHORT) * BATCH / (times[1] - times[0]))
            bares.append(rate(lambda: [step() for _ in range(LONG - SHORT)], (LONG - SHORT) * BATCH))
        ratios = sorted(f / b for f, b in zip(fulls, bares))
        full, bare, ratio = float(np.median(fulls)), float(np.median(bares)), float(np.median(ratios))
        code = ("from endopat.pretrain import pretrain; from endopat.tasks.config import PretrainConfig; from endopat.config import ModelConfig;"
                f"pretrain('{tmp / 'warm' / 'frames'}', '{tmp / f'rss-{task}'}', PretrainConfig(task='{task}', "
                f"model=ModelConfig(image_size=({args.size},{args.size})), steps=10, accelerator='cpu'), "
                "progress=False, log=lambda *a: None)")
        print(f"| {task} | {full:.1f} | {bare:.1f} | {ratio:.2f} [{ratios[0]:.2f}, {ratios[-1]:.2f}] "
              f"| {peak_rss_mib(code):.0f} |", flush=True)


if __name__ == "__main__":
    main()
