"""Pretraining pipeline speed and memory (issue 6). Prints ratios measured in one run.

1. full pretraining step images/s (loader + Lab conversion + D and G updates, the real loop) vs the
   bare G+D forward/backward on pre-made tensors of the same size (goal >= 0.9);
2. channels_last vs default memory format for the bare step (kept off unless it helps);
3. peak RSS pretraining from 1k vs 10k frames (goal <= 1.2).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, rate  # noqa: E402

SIZE = 128
STEPS = 30


def make_store(root: Path, n: int) -> Path:
    from endopat.data.synth import SITES, SceneGenerator

    gen = SceneGenerator(SITES["target"], SIZE, np.random.default_rng(0))
    base = [gen.frame(t)[0] for t in range(50)]
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for i in range(n):
        Image.fromarray(base[i % 50]).save(root / "imgs" / f"{i:06d}.png")
    return root / "imgs"


def main() -> None:
    torch.set_num_threads(2)
    from endopat.config import DiscriminatorConfig, ModelConfig
    from endopat.tasks.config import PretrainConfig
    from endopat.networks import Colorizer, Discriminator
    from endopat.pretrain import pretrain

    tmp = Path(tempfile.mkdtemp())
    model = ModelConfig(image_size=(SIZE, SIZE))
    disc = DiscriminatorConfig()
    imgs = make_store(tmp / "small", 1000)
    cfg = PretrainConfig(model=model, discriminator=disc, steps=5, batch_size=8, sample_every=10**6,
                         checkpoint_every=10**6, accelerator="cpu")
    pretrain(imgs, tmp / "warm", cfg, progress=False, log=lambda *a: None)  # decodes the frames once
    t = time.perf_counter()
    pretrain(tmp / "warm" / "frames", tmp / "run", cfg.model_copy(update={"steps": STEPS}), progress=False,
             log=lambda *a: None)
    full = STEPS * 8 / (time.perf_counter() - t)

    def bare_step(channels_last: bool):
        G, D = Colorizer(model), Discriminator(disc)
        og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
        x = torch.rand(8, 3, SIZE, SIZE)
        if channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)

        def step():
            fake = G(x[:, :1])
            d = D(torch.cat([x, torch.cat([x[:, :1], fake.detach()], 1)]))
            od.zero_grad(); d.mean().backward(); od.step()
            D.requires_grad_(False)
            og.zero_grad(); D(torch.cat([x[:, :1], fake], 1)).mean().backward(); og.step()
            D.requires_grad_(True)

        return rate(lambda: [step() for _ in range(5)], 40)

    bare = bare_step(False)
    print(f"pretraining at {SIZE}x{SIZE}: full loop {full:.1f} img/s (incl. setup and checkpoint) vs bare G+D "
          f"{bare:.1f} img/s, efficiency {full / bare:.2f} (goal >= 0.9)")
    cl = bare_step(True)
    print(f"channels_last: {cl:.1f} vs {bare:.1f} img/s, ratio {cl / bare:.2f} (off by default unless > 1.1)")
    if "--compile" in sys.argv:  # ~1-2 minutes of compilation
        t = time.perf_counter()
        try:
            pretrain(tmp / "warm" / "frames", tmp / "compiled", cfg.model_copy(update={"steps": STEPS, "compile": True}),
                     progress=False, log=lambda *a: None)
            comp = STEPS * 8 / (time.perf_counter() - t)
            print(f"torch.compile: full loop {comp:.1f} vs {full:.1f} img/s (compilation included), ratio {comp / full:.2f}")
        except Exception as err:  # report, do not hide, a compile failure
            print(f"torch.compile failed: {err.__class__.__name__}: {str(err).splitlines()[0][:200]}")

    code = ("from endopat.pretrain import pretrain; from endopat.tasks.config import PretrainConfig; from endopat.config import ModelConfig;"
            f"pretrain('{{}}', '{{}}', PretrainConfig(model=ModelConfig(image_size=({SIZE},{SIZE})), steps=10,"
            "accelerator='cpu'), progress=False, log=lambda *a: None)")
    big = make_store(tmp / "big", 10000)
    rss_small = peak_rss_mib(code.format(imgs, tmp / "r1"))
    rss_big = peak_rss_mib(code.format(big, tmp / "r2"))
    print(f"peak RSS pretraining from 10k vs 1k frames: {rss_big:.0f} vs {rss_small:.0f} MiB, "
          f"ratio {rss_big / rss_small:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
