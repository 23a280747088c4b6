"""Prediction pipeline speed (issue 5). Prints ratios measured in one run.

1. ``predict`` on a video (decode -> infer -> overlay -> encode) frames/s vs the bare model forward
   frames/s on the same decoded frames (pipeline efficiency; goal >= 0.85), at 256x256 and 512x640;
2. onnxruntime vs PyTorch CPU frames/s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import rate, synthetic_video  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.data.video import iter_frames
    from endopat.evaluate import Segmenter
    from endopat.export import OnnxSegmenter, export_onnx
    from endopat.networks import build_unet, prepare_input
    from endopat.predict import predict

    tmp = Path(tempfile.mkdtemp())
    for h, w in ((256, 256), (512, 640)):
        cfg = ModelConfig(image_size=(h, w))
        ckpt = save_checkpoint(tmp / f"m{h}.pt", kind="segmenter", model_cfg=cfg,
                               state_dict=build_unet(cfg).state_dict())
        n = 48 if h == 256 else 16
        video = synthetic_video(tmp / f"v{h}.mp4", n, h)
        if w != h:  # a 512x640 video: pad the square frames
            from endopat.data.video import write_video
            frames = [np.pad(f, ((0, 0), (0, w - h), (0, 0))) for _, f in iter_frames(video)]
            write_video(video, frames)
        frames = [f for _, f in iter_frames(video)]
        seg = Segmenter(ckpt)
        x = prepare_input(torch.from_numpy(np.stack(frames)), "L")

        def bare():
            with torch.no_grad():
                for i in range(0, n, 8):
                    seg.model(x[i : i + 8])

        model_fps = rate(bare, n)
        t = time.perf_counter()
        predict(ckpt, video, tmp / f"out{h}", batch_size=8, progress=False)
        pipe_fps = n / (time.perf_counter() - t)
        print(f"{h}x{w}: predict {pipe_fps:.1f} frames/s vs bare forward {model_fps:.1f} frames/s, "
              f"efficiency {pipe_fps / model_fps:.2f} (goal >= 0.85)")
        onnx = OnnxSegmenter(export_onnx(ckpt, tmp / f"m{h}.onnx"))
        ort_fps = rate(lambda: [onnx.probabilities(frames[i : i + 8]) for i in range(0, n, 8)], n)
        pt_fps = rate(lambda: [seg.probabilities(frames[i : i + 8]) for i in range(0, n, 8)], n)
        print(f"{h}x{w}: onnxruntime {ort_fps:.1f} vs PyTorch {pt_fps:.1f} frames/s, ratio {ort_fps / pt_fps:.2f}")


if __name__ == "__main__":
    main()
