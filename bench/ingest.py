"""Ingestion and loading speed (issue 3). Prints ratios measured in one run.

1. frame-store ingestion frames/s vs the ``ffmpeg`` command line decoding the same file to images;
2. loader images/s at 256x256 with 2 workers vs one pretraining step's images/s (goal >= 3);
3. peak RSS ingesting a long vs a short video (goal ~1).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, rate, synthetic_video  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    from endopat.data.frames import build_store

    tmp = Path(tempfile.mkdtemp())
    video = synthetic_video(tmp / "v.mp4", 300, 256)

    # 1. ingestion vs ffmpeg CLI (both decode and write every frame at 256x256)
    n = 300
    t = time.perf_counter()
    build_store(video, tmp / "store", (256, 256))
    ours = n / (time.perf_counter() - t)
    if shutil.which("ffmpeg"):
        (tmp / "ff").mkdir()
        t = time.perf_counter()
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(video), "-vf", "scale=256:256",
                        str(tmp / "ff" / "%06d.png")], check=True)
        ff = n / (time.perf_counter() - t)
        print(f"ingestion: endopat {ours:.0f} frames/s, ffmpeg CLI to PNG {ff:.0f} frames/s, ratio {ours / ff:.2f}")
    else:
        print(f"ingestion: endopat {ours:.0f} frames/s (ffmpeg CLI not installed: apt-get install ffmpeg)")

    # 2. loader vs training step at 256x256
    from endopat.config import DiscriminatorConfig, ModelConfig
    from endopat.networks import Colorizer, Discriminator
    from endopat.data.store import FrameDataset
    from endopat.data.store import FrameStore
    from endopat import colour

    store = FrameStore(tmp / "store")
    loader = torch.utils.data.DataLoader(FrameDataset(store), batch_size=8, shuffle=True, num_workers=2,
                                         persistent_workers=True, drop_last=True)

    def load_epoch():
        for _ in loader:
            pass

    load = rate(load_epoch, len(store) // 8 * 8)
    cfg = ModelConfig(image_size=(256, 256))
    G, D = Colorizer(cfg), Discriminator(DiscriminatorConfig())
    og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    batch = torch.from_numpy(store[0])[None].repeat(8, 1, 1, 1)

    def step():
        lab = colour.rgb_uint8_to_lab_n(batch)
        fake = G(lab[:, :1])
        d = D(torch.cat([lab, torch.cat([lab[:, :1], fake.detach()], 1)]))
        od.zero_grad(); d.mean().backward(); od.step()
        og.zero_grad(); D(torch.cat([lab[:, :1], fake], 1)).mean().backward(); og.step()

    train = rate(step, 8, repeat=2)
    print(f"loader: {load:.0f} img/s (2 workers) vs training step {train:.1f} img/s at 256x256, ratio {load / train:.1f} (goal >= 3)")

    # 3. peak RSS, long vs short video
    long_video = synthetic_video(tmp / "long.mp4", 600, 256)
    short_video = synthetic_video(tmp / "short.mp4", 60, 256)
    code = "from endopat.data.frames import build_store; build_store('{}', '{}', (256, 256))"
    long_rss = peak_rss_mib(code.format(long_video, tmp / "sl"))
    short_rss = peak_rss_mib(code.format(short_video, tmp / "ss"))
    print(f"peak RSS ingesting 600 vs 60 frames: {long_rss:.0f} vs {short_rss:.0f} MiB, ratio {long_rss / short_rss:.2f} (goal ~1)")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
