"""A synthetic endoscopy generator: short videos and labeled frames with exact instrument masks.

Each scene (:mod:`endopat.data.scene`) is a circular field of view on black, textured tissue and
1-3 grey metallic instruments entering from the border; the same seed gives the same pixels.

The colour statistics carry the signal the paper relies on: reds and yellows are frequent, the
(slightly cool) greys of the instruments are rare, so colour rebalancing has something to do, and
re-colouring an instrument grey requires finding it from luminance and shape.

``site`` selects a domain: ``target`` (the default), ``other`` (another hospital: warmer light,
paler tissue, dark thick robotic shafts) and ``natural`` (not endoscopic at all: full frame, greens
and blues, coloured objects), for the pretraining-domain ablation of the paper's section 2.3.3.

On-disk layout written by :func:`generate`::

    OUT/unlabeled/<site>_vidNN.mp4                  unlabeled videos (never the val/test videos)
    OUT/labeled/{train,val,test}/images/<stem>.png  labeled frames, split by video
    OUT/labeled/{train,val,test}/masks/<stem>.png   0/255 instrument masks, same stem
    OUT/synth.json                                  parameters, seed and each video's role

Stems are ``<site>_vidNN_fFFF``: the video id is the group of a frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from endopat.data.scene import SITES, SceneGenerator
from endopat.data.video import write_video
from endopat.io import atomic_write_text, output_folder, remove_leftovers, write_png
from endopat.seeds import Seed

__all__ = ["SITES", "SceneGenerator", "SynthSpec", "generate", "video_roles"]  # the scenes: endopat.data.scene

class SynthSpec(BaseModel):
    """What :func:`generate` makes (also the items of a study's ``synth:`` list); strict like the
    configs (endopat.config, which data must not import: it imports data's geometry)."""

    model_config = ConfigDict(extra="forbid")

    site: str = "target"
    seed: Seed = 0
    size: int = Field(256, ge=32)
    videos: int = Field(8, ge=3, description="labeled videos, split train/val/test by video")
    unlabeled_videos: int = Field(8, ge=0)
    frames: int = Field(48, ge=1)
    label_every: int = Field(4, ge=1)
    fps: int = Field(10, ge=1)


def video_roles(n_labeled_videos: int) -> list[str]:
    """Split labeled videos: ~25 % test, ~15 % (>= 1) validation, the rest training."""
    if n_labeled_videos < 3:
        raise ValueError("need at least 3 labeled videos (train, val and test are video-disjoint)")
    n_test = max(1, round(0.25 * n_labeled_videos))
    n_val = max(1, round(0.15 * n_labeled_videos))
    n_train = n_labeled_videos - n_test - n_val
    return ["train"] * n_train + ["val"] * n_val + ["test"] * n_test


def generate(out: str | Path, spec: SynthSpec, progress=None) -> dict:
    """Write a synthetic dataset (layout in the module docstring); returns the manifest."""

    if spec.site not in SITES:
        raise ValueError(f"unknown site '{spec.site}' (choose from {', '.join(SITES)})")
    out = output_folder(out)
    remove_leftovers(out)  # a killed generation's temporary files
    site = SITES[spec.site]
    roles = video_roles(spec.videos) + ["unlabeled"] * spec.unlabeled_videos
    manifest = {"spec": spec.model_dump(), "videos": []}
    seeds = np.random.SeedSequence([spec.seed, sum(map(ord, spec.site))]).spawn(len(roles))
    for vid, (role, seed) in enumerate(zip(roles, seeds)):
        name = f"{site.name}_vid{vid:02d}"
        gen = SceneGenerator(site, spec.size, np.random.default_rng(seed))
        frames = []
        n_labeled = 0
        for t in range(spec.frames):
            rgb, mask = gen.frame(t)
            frames.append(rgb)
            if role != "unlabeled" and t % spec.label_every == 0:
                base = out / "labeled" / role
                write_png(base / "images" / f"{name}_f{t:03d}.png", rgb)
                write_png(base / "masks" / f"{name}_f{t:03d}.png", mask.astype(np.uint8) * 255)
                n_labeled += 1
        if role in ("train", "unlabeled"):
            write_video(out / "unlabeled" / f"{name}.mp4", frames, fps=spec.fps)
        manifest["videos"].append({"name": name, "role": role, "labeled_frames": n_labeled})
        if progress:
            progress(vid + 1, len(roles))
    atomic_write_text(out / "synth.json", json.dumps(manifest, indent=2))
    return manifest
