"""GPU figures in one run (issue 12.7), for docs/scaling.md. Run through ``bench/gpu.sh``.

1. re-colorization pretraining at 256x256, batch 16: the real loop (``endopat.pretrain``) in
   images/s at 32-bit and at bf16-mixed, each against the bare G+D step on pre-made tensors
   (ratio, goal >= 0.95), and bf16 against 32-bit;
2. prediction at 512x640: the bare segmenter forward in frames/s, and ``Segmenter.probabilities``
   (fit, Lab, forward, back to full size) with its preprocessing on the host and on the device, for
   512x640 and full-HD frames, each as a ratio to the bare forward; the exported graph on
   onnxruntime's CUDA provider when it has one;
3. with 2 or more GPUs, the same pretraining as 2-GPU DDP (``devices: 2``) against 1 GPU.

``--device cpu --quick`` runs every code path small on a CPU (the dry run CI can afford).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import pretrain as bench_pretrain  # noqa: E402


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bare_recolor(model, batch: int, size: int, device: str, precision: str) -> float:
    """Images/s of the bare G+D step (D then G, as the task does) on pre-made tensors."""
    from endopat.networks import Colorizer, Discriminator
    from endopat.tasks.recolor import RecolorSettings

    G, D = Colorizer(model).to(device), Discriminator(RecolorSettings().discriminator).to(device)
    og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    dtype = torch.bfloat16 if precision == "bf16-mixed" else None

    def step():
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            fake = G(x[:, :1])
            d = D(torch.cat([x, torch.cat([x[:, :1], fake.detach()], 1)]))
        od.zero_grad(); d.float().mean().backward(); od.step()
        D.requires_grad_(False)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            g = D(torch.cat([x, torch.cat([x[:, :1], fake], 1)]))
        og.zero_grad(); g.float().mean().backward(); og.step()
        D.requires_grad_(True)

    for _ in range(3):
        step()
    sync(device)
    t, n = time.perf_counter(), 30
    for _ in range(n):
        step()
    sync(device)
    return n * batch / (time.perf_counter() - t)


def full_recolor(frames: Path, out: Path, model, batch: int, device: str, precision: str, steps: tuple[int, int],
                 devices: int = 1, workers: int = 0) -> float:
    """Images/s of the real pretraining loop: the difference of a long and a short run (set-up,
    first-step compilation of kernels and the final save cancel)."""
    from endopat.tasks.config import PretrainConfig
    from endopat.pretrain import pretrain

    times = []
    for n in steps:
        cfg = PretrainConfig(model=model, steps=n, batch_size=batch, accelerator=device, precision=precision,
                             devices=devices, sample_every=10**6, checkpoint_every=10**6, log_every=10,
                             num_workers=workers)
        t = time.perf_counter()
        if devices == 1:
            pretrain(frames, out / f"{precision}-{n}-w{workers}", cfg, progress=False, log=lambda *a: None)
        else:  # DDP launches its processes: a fresh interpreter, as a user's command would
            cfg_path = out / f"ddp-{n}.json"
            cfg_path.write_text(cfg.model_dump_json())
            code = ("import json,sys; from endopat.tasks.config import PretrainConfig; from endopat.pretrain import pretrain;"
                    f"pretrain('{frames}', '{out / f'ddp-{n}'}', PretrainConfig.model_validate_json("
                    f"open('{cfg_path}').read()), progress=False, log=lambda *a: None)")
            subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t)
    return (steps[1] - steps[0]) * batch * devices / (times[1] - times[0])


def predict_fps(tmp: Path, device: str, n: int, quick: bool = False) -> dict[str, float]:
    """frames/s of the bare forward (a prepared input batch on the device) and of
    ``Segmenter.probabilities`` (fit, Lab, forward, back to full size) with the preprocessing on the
    host and on the device, for 512x640 frames (the network's size) and full-HD frames."""
    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.segmenter import Segmenter
    from endopat.networks import build_unet

    cfg = ModelConfig(image_size=(512, 640), **({"features": (4, 4, 8, 8, 16, 4)} if quick else {}))
    ckpt = save_checkpoint(tmp / "seg.pt", kind="segmenter", model_cfg=cfg, state_dict=build_unet(cfg).state_dict())
    out = {}

    def timed(fn, frames) -> float:
        fn(frames[:8])
        sync(device)
        t = time.perf_counter()
        for i in range(0, n, 8):
            fn(frames[i : i + 8])
        sync(device)
        return n / (time.perf_counter() - t)

    host, on_device = Segmenter(ckpt, device=device, preprocess="host"), Segmenter(ckpt, device=device, preprocess="device")
    x = torch.randn(8, 3, 512, 640, device=device)
    out["bare forward"] = timed(lambda fr: on_device.forward(x), [None] * n)
    for hw in ((512, 640), (1080, 1920)):
        frames = [np.random.default_rng(i).integers(0, 255, (*hw, 3), dtype=np.uint8) for i in range(n)]
        out[f"pytorch, {hw[0]}x{hw[1]} frames, preprocessing on the host"] = timed(host.probabilities, frames)
        out[f"pytorch, {hw[0]}x{hw[1]} frames, preprocessing on the device"] = timed(on_device.probabilities, frames)
    try:
        import onnxruntime as ort

        from endopat.export import OnnxSegmenter, export_onnx
    except ImportError:
        return out
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if provider in ort.get_available_providers():
        onnx = OnnxSegmenter(export_onnx(ckpt, tmp / "seg.onnx"), providers=[provider])
        frames = [np.random.default_rng(i).integers(0, 255, (512, 640, 3), dtype=np.uint8) for i in range(n)]
        out[f"onnxruntime ({provider}), 512x640 frames"] = timed(onnx.probabilities, frames)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes: check the code paths, not the speed")
    ap.add_argument("--workers", type=int, default=0, help="data-loader workers of the pretraining loop")
    ap.add_argument("--pretrain-only", action="store_true")
    ap.add_argument("--batch", type=int, default=None, help="pretraining batch (default 16)")
    ap.add_argument("--repeats", type=int, default=1, help="full/bare pairs per precision (median ratio)")
    args = ap.parse_args()
    from endopat.config import ModelConfig

    size, batch, steps, n_pred = (32, 2, (1, 2), 8) if args.quick else (256, args.batch or 16, (5, 35), 64)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; pretraining {size}x{size}, batch {batch}, "
          f"{args.workers} loader workers")
    tmp = Path(tempfile.mkdtemp())
    bench_pretrain.SIZE = size
    frames_src = bench_pretrain.make_store(tmp / "imgs", 200)
    from endopat.tasks.config import PretrainConfig
    from endopat.pretrain import pretrain

    model = ModelConfig(image_size=(size, size), **({"features": (4, 4, 8, 8, 16, 4)} if args.quick else {}))
    pretrain(frames_src, tmp / "warm", PretrainConfig(model=model, steps=1, accelerator=args.device),
             progress=False, log=lambda *a: None)  # decodes the frames once
    frames = tmp / "warm" / "frames"
    precisions = ["32-true"] + (["bf16-mixed"] if args.device == "cpu" or torch.cuda.is_bf16_supported() else [])
    full = {}
    print("| precision | full loop img/s | bare G+D step img/s | ratio (goal >= 0.95), median [range] |")
    print("|---|---|---|---|")
    for p in precisions:
        pairs = []
        for r in range(args.repeats):  # alternating, so that drift hits both sides of a pair
            f = full_recolor(frames, tmp / f"r{r}", model, batch, args.device, p, steps, workers=args.workers)
            pairs.append((f, bare_recolor(model, batch, size, args.device, p)))
        ratios = sorted(f / b for f, b in pairs)
        full[p] = float(np.median([f for f, _ in pairs]))
        bare = float(np.median([b for _, b in pairs]))
        print(f"| {p} | {full[p]:.1f} | {bare:.1f} | {np.median(ratios):.2f} [{ratios[0]:.2f}, {ratios[-1]:.2f}] |",
              flush=True)
    if args.pretrain_only:
        return
    if "bf16-mixed" in full:
        print(f"bf16-mixed vs 32-bit, full loop: {full['bf16-mixed'] / full['32-true']:.2f}x")
    fps = predict_fps(tmp, args.device, n_pred, args.quick)
    bare = fps.pop("bare forward")
    print(f"predict, network 512x640, batch 8: bare forward {bare:.1f} frames/s", flush=True)
    for backend, f in fps.items():  # Segmenter.probabilities: fit, Lab, forward, back to full size
        print(f"predict, {backend}: {f:.1f} frames/s = {f / bare:.2f} x the bare forward", flush=True)
    if args.device == "cuda" and torch.cuda.device_count() >= 2:
        ddp = full_recolor(frames, tmp, model, batch, "cuda", "32-true", steps, devices=2)
        print(f"2-GPU DDP pretraining: {ddp:.1f} img/s vs 1 GPU {full['32-true']:.1f} "
              f"({ddp / full['32-true']:.2f}x; batch {batch} per GPU)")
    else:
        print("2-GPU DDP: skipped (fewer than 2 GPUs)")


if __name__ == "__main__":
    main()
