"""Semi-supervised fine-tuning's cost on CPU (issue 32): one training step of each method against a
supervised step on the same labeled batch (goal: at most 2.5x), the share of the step spent
drawing the unlabeled batch from the frame store, and the peak memory of drawing from 1k and 10k
unlabeled frames (a fresh process each; the store is memory-mapped, so it should not grow).

    python bench/semi.py [--steps 20] [--size 96x128] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib  # noqa: E402


def fake_store(root: Path, frames: int, size: tuple[int, int]) -> Path:
    """A frame store of ``frames`` random frames written directly (two videos)."""
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    with open(root / "frames.u8", "wb") as fh:
        rng = np.random.default_rng(0)
        for _ in range(frames):
            fh.write(rng.integers(0, 255, (h, w, 3), np.uint8).tobytes())
    half = frames // 2
    (root / "store.json").write_text(json.dumps({"count": frames, "height": h, "width": w, "stride": 1,
                                                 "sources": [{"path": "a.mp4", "frames": half},
                                                             {"path": "b.mp4", "frames": frames - half}]}))
    return root


def step_times(method: str | None, store: Path, size, batch: int, steps: int,
               strong: dict | None = None) -> tuple[float, float]:
    """Seconds per step, and the share of it spent drawing the unlabeled batch."""
    from endopat import losses
    from endopat.config import ModelConfig, SemiConfig
    from endopat.data.store import FrameStore
    from endopat.networks import arch_of, build_unet, one_logit_head, output_conv
    from endopat.semi import SEMI
    from endopat.semi.unlabeled import Unlabeled

    cfg = ModelConfig(features=(16, 16, 32, 64, 128, 16), image_size=size)
    torch.manual_seed(0)
    net = build_unet(cfg)
    one_logit_head(output_conv(net, arch_of(cfg)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(batch, 3, *size) * 2 - 1
    y = (torch.rand(batch, *size) > 0.8).long()
    semi = unl = None
    if method:
        scfg = SemiConfig(method=method, batch_size=batch, ramp_up=0, strong=strong or {})
        extra = {"deepest": net.down_4} if method == "fixmatch" else {}
        semi = SEMI[method](scfg, net, **extra)
        unl = Unlabeled(FrameStore(store), "Lab", batch, scfg.gap if SEMI[method].pairs else None)
    drawing = 0.0
    for k in range(steps + 2):
        if k == 2:
            t, drawing = time.perf_counter(), 0.0
        loss = losses.segmentation(net(x), y)
        if semi:
            t0 = time.perf_counter()
            u = unl.next()
            drawing += time.perf_counter() - t0
            loss = loss + semi.loss(net, u)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if semi:
            semi.after_step(net)
    total = time.perf_counter() - t
    return total / steps, drawing / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", default="96x128")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        store = fake_store(Path(tmp) / "s1k", 1000, size)
        sup, _ = step_times(None, store, size, args.batch, args.steps)
        print(f"step at {size[0]}x{size[1]}, batch {args.batch} labeled + {args.batch} unlabeled, "
              f"{torch.get_num_threads()} threads; supervised {1000 * sup:.0f} ms")
        print("| method | ms per step | x supervised | share drawing the unlabeled batch |")
        print("|---|---:|---:|---:|")
        for method, extra in (("mean_teacher", {}), ("fixmatch", {}), ("fixmatch", {"feature_stream": True}),
                              ("temporal", {})):
            t, share = step_times(method, store, size, args.batch, args.steps, extra)
            name = method + (" (feature_stream)" if extra else "")
            print(f"| {name} | {1000 * t:.0f} | {t / sup:.2f} | {100 * share:.1f} % |", flush=True)
        fake_store(Path(tmp) / "s10k", 10000, size)
        print("\n| unlabeled frames | store on disk (MiB) | peak RSS drawing 50 batches (MiB) |\n|---:|---:|---:|")
        for name, n in (("s1k", 1000), ("s10k", 10000)):
            code = (f"import torch\nfrom endopat.data.store import FrameStore\nfrom endopat.semi.unlabeled import Unlabeled\n"
                    f"u = Unlabeled(FrameStore({str(Path(tmp) / name)!r}), 'Lab', {args.batch}, None)\n"
                    "for _ in range(50): u.next()\n")
            mib = (Path(tmp) / name / "frames.u8").stat().st_size / 2 ** 20
            print(f"| {n} | {mib:.0f} | {peak_rss_mib(code):.0f} |", flush=True)


if __name__ == "__main__":
    main()
