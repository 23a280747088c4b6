"""Speed of each architecture (issue 13), to choose one: a fine-tuning step (forward, backward,
Adam; Lab input, cross-entropy) in images/s and inference in frames/s, at 256x256 and 512x640,
with the default decoder widths, beside the paper's BasicUNet (endopat's default widths and the
paper example's). One run, same machine, one row per architecture; ratios are to basic_unet.

    python bench/encoders.py [--device cuda] [--batch 4] [--reps 3] [--sizes 256x256,512x640] [--archs a,b]
"""

from __future__ import annotations

import argparse
import time

import torch

ROWS = [("basic_unet", {}), ("basic_unet (paper widths)", {"features": (32, 32, 64, 128, 256, 32)}),
        *((a, {}) for a in ("resnet18", "resnet34", "resnet50", *(f"efficientnet-b{i}" for i in range(5))))]


def timed(fn, reps: int, sync) -> float:
    fn()  # warm-up (allocations, cudnn autotune)
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="256x256,512x640")
    ap.add_argument("--archs", default=None, help="comma-separated subset of the rows' names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from endopat.config import ModelConfig
    from endopat.losses import segmentation
    from endopat.networks import build_unet, count_parameters

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = [r for r in ROWS if args.archs is None or r[0].split(" ")[0] in args.archs.split(",")]
    print(f"device {args.device}, batch {args.batch}, best of {args.reps}"
          + (f", {args.threads} threads" if dev.type == "cpu" else ""))
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        print(f"\n{h}x{w}\n| arch | params (M) | train img/s | x basic_unet | infer frames/s | x basic_unet |")
        print("|---|---:|---:|---:|---:|---:|")
        ref = None
        for name, extra in rows:
            cfg = ModelConfig(arch=name.split(" ")[0], image_size=(h, w), **extra)
            net = build_unet(cfg).to(dev)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            x = torch.randn(args.batch, 3, h, w, device=dev)
            y = (torch.rand(args.batch, h, w, device=dev) > 0.8).long()

            def train():
                net.train()
                loss = segmentation(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            def infer():
                net.eval()
                with torch.no_grad():
                    net(x)

            tr = args.batch / timed(train, args.reps, sync)
            inf = args.batch / timed(infer, args.reps, sync)
            ref = ref or (tr, inf)
            print(f"| {name} | {count_parameters(net) / 1e6:.1f} | {tr:.2f} | {tr / ref[0]:.2f} | {inf:.2f} | "
                  f"{inf / ref[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
