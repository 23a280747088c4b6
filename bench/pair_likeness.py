"""Are a source's temporal pairs neighbours? For each unlabeled source in ../shared/data, a frame
store at a study's size, then :func:`endopat.semi.unlabeled.neighbour_likeness` at gaps 1 and 2:
the mean absolute grey difference of pairs ``gap`` frames apart in one video over that of any two
frames of one video (near 1: no more alike than random frames; temporal consistency assumes small
motion). The table in docs/method.md, "Are the pairs neighbours?", is this script's output.

    ENDOPAT_SHARED_DATA=../shared/data python bench/pair_likeness.py [--size 96x176]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

SOURCES = {  # name -> (path under shared/data, how it was sampled, per its README)
    "endovis15-dev": ("endovis15-dev/images", "40 frames per surgery; spacing not given"),
    "endoscapes-seg50-dev": ("endoscapes-seg50-dev/images", "750-1,500 frames (30-60 s)"),
    "m2cai16-unlabeled": ("m2cai16-unlabeled", "about 7 s"),
    "endoscapes-unlabeled": ("endoscapes-unlabeled", "every 25th frame (1 s)"),
    "cholecseg8k-sample": ("cholecseg8k-sample", "consecutive frames at 25 fps"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="96x176", help="the store's HxW (the Endoscapes study's)")
    args = ap.parse_args()
    from endopat.data.frames import build_store
    from endopat.semi.unlabeled import neighbour_likeness, videos

    shared = Path(os.environ.get("ENDOPAT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    h, w = (int(v) for v in args.size.lower().split("x"))
    print("| source | sampled | frames | videos | gap 1 | gap 2 |\n|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (rel, sampled) in SOURCES.items():
            src = shared / rel
            if name == "cholecseg8k-sample":  # its frames lie one folder each: the clip's images only
                src = Path(tmp) / "clip"
                src.mkdir()
                for p in sorted((shared / rel).rglob("frame_*_endo.png")):
                    (src / f"clip_{int(p.stem.split('_')[1]):06d}.png").symlink_to(p)
            store = build_store(src, Path(tmp) / name, (h, w), log=lambda *a: None)
            ratios = [neighbour_likeness(store, gap) for gap in (1, 2)]
            print(f"| {name} | {sampled} | {len(store)} | {len(set(videos(store)))} | "
                  + " | ".join("-" if r is None else f"{r:.2f}" for r in ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
