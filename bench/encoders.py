"""Speed and memory of each architecture (issues 13, 23), to choose one: a fine-tuning step
(forward, backward, Adam; Lab input, cross-entropy) in images/s, inference in frames/s and the peak
memory of the two (CPU: the peak resident set of a fresh process per row; GPU: peak allocated), at
224x224, 256x256 and 512x640 (a size is rounded down to the architecture's multiple: 14 for
ViT-*/14, so 512x640 is 504x630 there), with the default decoder widths, beside the paper's
BasicUNet. One run, same machine, one row per architecture; ratios are to basic_unet.

    python bench/encoders.py [--device cuda] [--batch 4] [--reps 3] [--sizes 224x224,512x640] [--archs a,b]
"""

from __future__ import annotations

import argparse
import time

import torch

ROWS = [("basic_unet", {}), ("basic_unet (paper widths)", {"features": (32, 32, 64, 128, 256, 32)}),
        *((a, {}) for a in ("resnet18", "resnet34", "resnet50", *(f"efficientnet-b{i}" for i in range(5)),
                            "vit_s14", "vit_b14", "vit_l14", "vit_s16", "vit_b16", "vit_s16_dinov3", "vit_b16_dinov3",
                            "vit_l16_dinov3", "convnext_tiny", "convnextv2_tiny", "convnext_large", "pvt_v2_b2",
                            "caformer_s18_relu"))]


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


def measure(name: str, extra: dict, h: int, w: int, args) -> dict:
    """One row: parameters, train img/s, inference frames/s, peak memory (MiB)."""
    import resource

    from endopat.archs import ARCHS
    from endopat.config import ModelConfig
    from endopat.losses import segmentation
    from endopat.networks import build_unet, count_parameters

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    m = ARCHS[name.split(" ")[0]].multiple
    h, w = h // m * m, w // m * m
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

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tr = args.batch / timed(train, args.reps, sync)
    inf = args.batch / timed(infer, args.reps, sync)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"name": name, "size": f"{h}x{w}", "params": count_parameters(net) / 1e6, "train": tr, "infer": inf,
            "peak": peak}


def main() -> None:
    import json
    import subprocess
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="224x224,512x640")
    ap.add_argument("--archs", default=None, help="comma-separated subset of the rows' names")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # ROW_INDEX:HxW, in a fresh process
    args = ap.parse_args()
    if args.one:
        i, size = args.one.split(":")
        h, w = (int(v) for v in size.split("x"))
        print(json.dumps(measure(*ROWS[int(i)], h, w, args)))
        return
    rows = [i for i, r in enumerate(ROWS) if args.archs is None or r[0].split(" ")[0] in args.archs.split(",")]
    print(f"device {args.device}, batch {args.batch}, best of {args.reps}"
          + (f", {args.threads} threads" if args.device == "cpu" else "") + "; each row in a fresh process")
    for size in args.sizes.split(","):
        print(f"\n{size} (rounded down to each architecture's multiple)\n"
              "| arch | size | params (M) | train img/s | x basic_unet | infer frames/s | x basic_unet | peak MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        ref = None
        for i in rows:
            cmd = [sys.executable, __file__, "--one", f"{i}:{size}", "--device", args.device, "--batch",
                   str(args.batch), "--reps", str(args.reps), "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"| {ROWS[i][0]} | {size} | failed: {done.stderr.strip().splitlines()[-1]} |", flush=True)
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            ref = ref or (r["train"], r["infer"])
            print(f"| {r['name']} | {r['size']} | {r['params']:.1f} | {r['train']:.2f} | {r['train'] / ref[0]:.2f} | "
                  f"{r['infer']:.2f} | {r['infer'] / ref[1]:.2f} | {r['peak']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
