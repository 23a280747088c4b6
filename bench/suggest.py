"""``endopat suggest`` at scale (issue 14). Prints ratios measured in one run.

Frames embedded per second, and the peak resident memory of suggesting 50 frames (diverse,
k-center) from a frame store of 1k vs 10k frames, each in a fresh process (goal: 10k / 1k <= 1.2;
memory is bounded by the embeddings, not the frames). The model is a U-Net of the demo's widths
(random weights: speed and memory do not depend on them).

    python bench/suggest.py [--size 128] [--small 1000] [--large 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib  # noqa: E402


def make_store(root: Path, n: int, size: int) -> Path:
    """A frame store of ``n`` synthetic frames (50 scenes, each with its own noise per copy)."""
    from endopat.data.store import STORE_DATA, STORE_META
    from endopat.data.synth import SITES, SceneGenerator

    gen = SceneGenerator(SITES["target"], size, np.random.default_rng(0))
    base = np.stack([gen.frame(t)[0] for t in range(50)]).astype(np.int16)
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / STORE_DATA, "wb") as fh:
        for i in range(n):
            fh.write(np.clip(base[i % 50] + rng.integers(-8, 9, base.shape[1:]), 0, 255).astype(np.uint8).tobytes())
    (root / STORE_META).write_text(json.dumps({"count": n, "height": size, "width": size, "kind": "images",
                                              "sources": [{"path": "synthetic", "frames": n}]}))
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=10000)
    args = ap.parse_args()
    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.networks import build_unet

    tmp = Path(tempfile.mkdtemp())
    cfg = ModelConfig(features=(8, 8, 16, 32, 64, 8), image_size=(args.size, args.size))
    model = save_checkpoint(tmp / "m.pt", kind="pretrained", model_cfg=cfg, state_dict=build_unet(cfg).state_dict())
    peaks, rates = {}, {}
    for n in (args.small, args.large):
        store = make_store(tmp / f"s{n}", n, args.size)
        code = (f"import time, torch; torch.set_num_threads(2); from endopat.suggest import suggest; t = time.time(); "
                f"suggest('{store}', 50, '{tmp / f'o{n}'}', model='{model}', progress=False, log=lambda *a: None); "
                f"print('SECONDS', time.time() - t)")
        t = time.perf_counter()
        peaks[n] = peak_rss_mib(code)
        rates[n] = n / (time.perf_counter() - t)
        print(f"{n} frames of {args.size}x{args.size}: peak RSS {peaks[n]:.0f} MiB, {rates[n]:.0f} frames/s "
              "(whole command: embed, choose, write)", flush=True)
    print(f"peak RSS {args.large} / {args.small} frames = {peaks[args.large] / peaks[args.small]:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
