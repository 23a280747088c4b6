"""``endopat serve``'s /predict latency on CPU at 854x480 (issue 33): the server started as users
start it (a subprocess, uvicorn), one Label Studio task per request (a local-files image under
--unlabeled), the model of ``model.image_size`` 256x448 (the aspect-true size of 854x480) with the
default widths. Prints, for the torch and the onnxruntime backend: median and p95 of sequential
requests, and median, p95 and requests/s under 8 concurrent clients.

    python bench/serve.py [--requests 30] [--concurrent 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("ENDOPAT_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
CONFIG = ('<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
          '<Label value="instrument"/></BrushLabels></View>')


def frame(folder: Path) -> str:
    """A real 854x480 laparoscopic frame where the samples are, else a synthetic one."""
    from endopat.io import read_image, write_png

    real = sorted((SHARED / "endoscapes-unlabeled").glob("*.jpg"))[:1]
    img = read_image(real[0]) if real else np.random.default_rng(0).integers(0, 255, (480, 854, 3), np.uint8)
    write_png(folder / "frame.png", img)
    return f"frame.png ({'real' if real else 'synthetic'} {img.shape[1]}x{img.shape[0]})"


def post(port: int, body: bytes) -> float:
    t = time.perf_counter()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200, r.read()
        r.read()
    return 1000 * (time.perf_counter() - t)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def run(backend: str, ckpt: Path, folder: Path, n: int, concurrent: int, port: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "endopat", "serve", str(ckpt), "--unlabeled", str(folder),
                             "--state", str(folder / f"state-{backend}"), "--port", str(port), "--backend", backend],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        body = json.dumps({"tasks": [{"id": 1, "data": {"image": "frame.png"}}], "label_config": CONFIG}).encode()
        post(port, body)  # warm-up (and, for onnx, the cached export)
        seq = [post(port, body) for _ in range(n)]
        times: list[float] = []
        lock = threading.Lock()

        def client() -> None:
            for _ in range(max(1, n // concurrent)):
                ms = post(port, body)
                with lock:
                    times.append(ms)

        t = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(concurrent)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print(f"| {backend} | {statistics.median(seq):.0f} | {p95(seq):.0f} | {statistics.median(times):.0f} | "
              f"{p95(times):.0f} | {len(times) / wall:.2f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--concurrent", type=int, default=8)
    args = ap.parse_args()
    import torch

    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.networks import build_unet

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg = ModelConfig(image_size=(256, 448))
        torch.manual_seed(0)
        save_checkpoint(folder / "best.pt", kind="segmenter", model_cfg=cfg, state_dict=build_unet(cfg).state_dict())
        print(f"image: {frame(folder)}; model {cfg.arch} {cfg.features} at {cfg.image_size[0]}x{cfg.image_size[1]}; "
              f"{os.cpu_count()} CPU cores; {args.requests} sequential requests, {args.concurrent} concurrent clients")
        print("| backend | sequential median ms | p95 ms | concurrent median ms | p95 ms | requests/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for k, backend in enumerate(("torch", "onnx")):
            run(backend, folder / "best.pt", folder, args.requests, args.concurrent, 9190 + k)


if __name__ == "__main__":
    main()
