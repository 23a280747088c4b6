"""Helpers shared by the bench scripts: timing, peak memory of a child process, synthetic inputs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def rate(fn, n_items: int, repeat: int = 1, warmup: int = 1) -> float:
    """Items per second of ``fn()`` (best of ``repeat`` after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


def peak_rss_mib(code: str) -> float:
    """Peak resident memory (MiB) of a fresh Python process running ``code``.

    Read from VmHWM in /proc (reset by exec), not ru_maxrss (which a child inherits from a large
    parent across fork + exec)."""
    probe = ("\nprint('PEAK', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code + probe], check=True, capture_output=True, text=True).stdout
    return int(out.rsplit("PEAK", 1)[1].strip(" []'\n")) / 1024


def synthetic_video(path: Path, frames: int, size: int = 256, seed: int = 0) -> Path:
    from endopat.data.synth import SITES, SceneGenerator
    from endopat.data.video import write_video

    gen = SceneGenerator(SITES["target"], size, np.random.default_rng(seed))
    write_video(path, (gen.frame(t)[0] for t in range(frames)), fps=25)
    return path
