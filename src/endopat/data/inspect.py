"""``endopat inspect``: what a dataset folder holds and every problem in it, before any training."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from endopat.data.labeled import SPLITS, load_image, load_mask
from endopat.data.masks import MASK_ENCODINGS
from endopat.data.readers import detect_layout, read_labeled
from endopat.data.video import iter_frames, video_info
from endopat.errors import EndopatError
from endopat.io import VIDEO_SUFFIXES, list_images, list_videos, read_image


def inspect_labeled(src: str | Path, layout: str | None = None,
                    progress: Callable[[int, int], None] | None = None, mask_format=None) -> dict:
    """Layout, counts, groups, image sizes, mask encodings, foreground-fraction distribution, the
    classes (pixel share and frames per class) and problems (one line each, naming the file: e.g. a
    mask whose values are not in the class list)."""

    src = Path(src)
    parts = [s for s in SPLITS if (src / s).is_dir()] if src.is_dir() else []
    roots = {s: src / s for s in parts} or {"all": src}
    report = {"source": str(src), "splits": {}, "problems": []}
    for split, root in roots.items():
        name = layout or detect_layout(root)
        samples = read_labeled(root, name, keep_bad=True)
        if mask_format is not None:
            samples = [s.with_format(mask_format) for s in samples]
        labels = samples[0].labels if samples else None
        pixels, frames = np.zeros(256, np.int64), np.zeros(256, np.int64)
        sizes, fractions, groups, encodings, blank = Counter(), [], Counter(), Counter(), []
        n_mask_files = 0
        for i, s in enumerate(samples):
            groups[s.group] += 1
            n_mask_files += len(s.masks)
            try:
                for m in s.masks:
                    encodings[MASK_ENCODINGS[s.encoding].describe(read_image(m, mode="raw"), s)] += 1
                image = load_image(s)
                sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
                if (image == image.flat[0]).all():  # one colour (a black frame between scenes)
                    blank.append(s.image.name)
                ids = load_mask(s, image.shape[:2])
                counts = np.bincount(ids.ravel(), minlength=256)
                pixels += counts
                frames += counts > 0
                scored = ids != s.labels.ignore if s.labels.ignore is not None else np.ones(ids.shape, bool)
                fractions.append(float(((ids > 0) & scored).sum() / max(1, scored.sum())))
            except EndopatError as err:
                report["problems"].append(str(err))
            if progress:
                progress(i + 1, len(samples))
        f = np.array(fractions) if fractions else np.zeros(1)
        report["splits"][split] = {
            "layout": name, "images": len(samples), "mask_files": n_mask_files,
            "groups": len(groups), "sizes": dict(sizes), "mask_encodings": dict(encodings), "blank_images": blank,
            "foreground": {"min": float(f.min()), "q1": float(np.percentile(f, 25)),
                           "median": float(np.median(f)), "q3": float(np.percentile(f, 75)),
                           "max": float(f.max()), "empty_share": float((f == 0).mean())},
        }
        if labels is not None:
            labelled = pixels[: labels.num_classes].sum()
            report["splits"][split]["classes"] = {
                name: {"id": i, "pixel_share": float(pixels[i] / max(1, labelled)), "frames": int(frames[i])}
                for i, name in enumerate(labels.names)}
            if labels.ignore is not None:
                report["splits"][split]["ignored"] = {"pixel_share": float(pixels[labels.ignore] / max(1, pixels.sum())),
                                                      "frames": int(frames[labels.ignore])}
    return report


def inspect_unlabeled(src: str | Path) -> dict:
    """Videos (frame count, size, fps) or images of an unlabeled source, and problems."""

    src = Path(src)
    if src.is_file() and src.suffix.lower() not in VIDEO_SUFFIXES:
        raise EndopatError(f"{src}: not a video (inspect takes a dataset folder, a folder of videos or images, "
                           "or a video)")
    videos = [src] if src.is_file() else list_videos(src)
    report = {"source": str(src), "videos": [], "images": 0, "problems": []}
    for v in videos:
        try:
            info = video_info(v)
            info["decoded_frames"] = sum(1 for _ in iter_frames(v))
            report["videos"].append({"path": str(v), **info})
        except EndopatError as err:
            report["problems"].append(str(err))
    if src.is_dir():
        report["images"] = len(list_images(src))
    if not videos and not report["images"]:
        raise EndopatError(f"{src}: no labeled layout, videos or images found")
    return report


def inspect_source(src: str | Path, layout: str | None = None, progress=None, mask_format=None) -> dict:
    src = Path(src)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if src.is_dir():
        root = next((src / s for s in SPLITS if (src / s).is_dir()), src)
        try:
            layout = layout or detect_layout(root)
        except EndopatError:
            return {"kind": "unlabeled", **inspect_unlabeled(src)}
        return {"kind": "labeled", **inspect_labeled(src, layout, progress, mask_format)}
    return {"kind": "unlabeled", **inspect_unlabeled(src)}
