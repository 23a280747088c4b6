"""Prediction pipeline speed (issues 5 and 12). Prints ratios measured in one run.

P3: ``predict`` on a video (decode -> fit + Lab -> infer -> overlay -> encode, three threads) in
frames/s, divided by the bare forward of the same backend on the same, already prepared input
(goal >= 0.9), for PyTorch and onnxruntime, at 512x640 (and 256x256 with ``--all``): the steady
state, with the model loaded and warm (the one-off cost of loading it, and for a checkpoint on
the onnx backend of finding its cached export, is printed apart). The stages' own costs (decode,
preprocessing, overlay, encode; ms per frame, each alone) are printed beside it, and the
onnxruntime / PyTorch ratio of the bare forwards.

    python bench/predict.py [--frames 24] [--all] [--threads 2]
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
from _common import rate, synthetic_video  # noqa: E402


def ms_per_frame(fn, n: int) -> float:
    return 1000.0 / rate(fn, n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--all", action="store_true", help="also 256x256")
    ap.add_argument("--threads", type=int, default=2, help="the network's threads (onnxruntime follows "
                    "torch's setting); the pipeline's other stages run beside them")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"network threads {args.threads}, cores {__import__('os').cpu_count()}")
    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.data.geometry import fit_image
    from endopat.data.video import iter_frames, write_video
    from endopat.networks import build_unet, prepare_input
    from endopat.drawing import overlay
    from endopat.predict import load_model
    from endopat.predict_video import predict_video

    tmp = Path(tempfile.mkdtemp())
    n = args.frames
    for h, w in ((512, 640), (256, 256)) if args.all else ((512, 640),):
        cfg = ModelConfig(image_size=(h, w))
        ckpt = save_checkpoint(tmp / f"m{h}.pt", kind="segmenter", model_cfg=cfg,
                               state_dict=build_unet(cfg).state_dict())
        video = synthetic_video(tmp / f"sq{h}.mp4", n, max(h, w))
        frames = [np.ascontiguousarray(f[:h, :w]) for _, f in iter_frames(video)]
        video = tmp / f"v{h}.mp4"
        write_video(video, frames)
        masks = [f[..., 1] > 128 for f in frames]
        stages = {
            "decode": ms_per_frame(lambda: list(iter_frames(video)), n),
            "fit+Lab": ms_per_frame(lambda: [prepare_input(torch.from_numpy(
                np.stack([fit_image(f, (h, w), cfg.fit) for f in frames[i : i + 8]])), cfg.input)
                for i in range(0, n, 8)], n),
            "overlay": ms_per_frame(lambda: [overlay(f, m) for f, m in zip(frames, masks)], n),
            "encode": ms_per_frame(lambda: write_video(tmp / "enc.mp4", frames, preset="veryfast"), n),
        }
        print(f"{h}x{w} stages alone, ms/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
        x = prepare_input(torch.from_numpy(np.stack(frames)), cfg.input)
        bare = {}
        for backend in ("torch", "onnx"):
            load_model(ckpt, "cpu", backend)  # the export is made once, outside the timing
            t = time.perf_counter()
            model = load_model(ckpt, "cpu", backend)
            model.forward(x[:8])
            loaded = time.perf_counter() - t
            bare[backend] = rate(lambda: [model.forward(x[i : i + 8]) for i in range(0, n, 8)], n)
            t = time.perf_counter()
            predict_video(model, video, tmp / f"out{h}{backend}", batch_size=8)
            pipe = n / (time.perf_counter() - t)
            print(f"{h}x{w} {backend:5s}: predict {pipe:.2f} frames/s vs bare forward {bare[backend]:.2f} "
                  f"({1000 / bare[backend]:.0f} ms/frame): P3 = {pipe / bare[backend]:.2f} (goal >= 0.9); "
                  f"load + first batch {loaded:.1f} s once")
        print(f"{h}x{w}: onnxruntime / PyTorch bare forward = {bare['onnx'] / bare['torch']:.2f}")


if __name__ == "__main__":
    main()
