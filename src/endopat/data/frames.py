"""Building frame stores (:mod:`endopat.data.store`): unlabeled frames decoded once, at training
size, for fast random access.

Format (a folder)::

    frames.u8    raw uint8 RGB, frame after frame, each height*width*3 bytes (C order)
    store.json   {"count", "height", "width", "sources": [{"path", "frames"}], "stride", ...}

Why: decoding video is the slow part of re-colorization pretraining, and a training batch needs
random frames from anywhere in hours of video. A flat uint8 file opened with ``np.memmap`` gives any
frame in one read without decoding, shares pages between data-loader workers, needs no extra
library, and is written by streaming (frames are appended as they are decoded, so memory does not
grow with video length). ``store.json`` is written last and atomically: a folder without it is an
unfinished store and is rebuilt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from endopat.data.geometry import Fit, aspect_size, content_box, fit_image
from endopat.data.video import iter_frames, video_info
from endopat.data.store import STORE_DATA, STORE_META, FrameStore, is_store
from endopat.errors import EndopatError
from endopat.io import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    atomic_write_text,
    list_images,
    list_videos,
    output_folder,
    read_cache,
    read_image,
    remove_leftovers,
)

def source_files(src: Path) -> tuple[str, list[Path]]:
    """What a pretraining source holds: ``("videos" | "images", files)`` (a file, or a folder's)."""
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if src.is_file():
        if src.suffix.lower() in VIDEO_SUFFIXES:
            return "videos", [src]
        if src.suffix.lower() in IMAGE_SUFFIXES:
            return "images", [src]
        raise EndopatError(f"{src}: neither a video nor an image")
    videos = list_videos(src)
    if videos:
        return "videos", videos
    images = list_images(src)
    if images:
        return "images", images
    raise EndopatError(f"{src}: no videos ({', '.join(VIDEO_SUFFIXES)}) or images found")


def detect_fov(frames: list[np.ndarray], threshold: int = 20, min_share: float = 0.02
               ) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, left, height, width)`` of the lit content area of an endoscope image.

    Rows and columns where more than ``min_share`` of the pixels (max over RGB, mean over the
    given frames) exceed ``threshold`` are content; the black border around the circular field of
    view is cut. ``None`` when the frames are lit to the edges (nothing to crop).
    """
    bright = np.mean([f.max(axis=2) for f in frames], axis=0) > threshold
    rows = np.flatnonzero(bright.mean(axis=1) > min_share)
    cols = np.flatnonzero(bright.mean(axis=0) > min_share)
    if len(rows) == 0 or len(cols) == 0:
        return None
    box = (int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
    h, w = bright.shape
    return None if box == (0, 0, h, w) else box


def _video_frames(path: Path, size: tuple[int, int], stride: int, fps: float | None, crop_fov: bool,
                  fit: Fit) -> Iterator[np.ndarray]:

    info = video_info(path)
    if fps is not None:
        stride = max(1, round((info["fps"] or fps) / fps))
    if not crop_fov:  # FFmpeg's scaler resizes to the content box while decoding; the pad is ours
        box = content_box((info["height"], info["width"]), size, fit)
        for _, frame in iter_frames(path, stride=stride, size=(box.height, box.width)):
            yield fit_image(frame, size, fit)
        return
    # the border is detected once per video, from its first frames, not per frame
    head = [f for _, f in zip(range(8), (f for _, f in iter_frames(path, stride=max(1, stride))))]
    box = detect_fov(head)
    for _, frame in iter_frames(path, stride=stride):
        if box is not None:
            top, left, h, w = box
            frame = frame[top : top + h, left : left + w]
        yield fit_image(np.ascontiguousarray(frame), size, fit)


def _iter_source(kind: str, files: list[Path], size: tuple[int, int], stride: int,
                 fps: float | None, crop_fov: bool, fit: Fit, on_bad) -> Iterator[tuple[Path, np.ndarray]]:
    if kind == "videos":
        for path in files:
            try:
                for frame in _video_frames(path, size, stride, fps, crop_fov, fit):
                    yield path, frame
            except EndopatError as err:
                on_bad(err)
    else:
        for path in files[::stride]:
            try:
                image = read_image(path)
            except EndopatError as err:
                on_bad(err)
                continue
            if crop_fov and (box := detect_fov([image])) is not None:
                top, left, h, w = box
                image = np.ascontiguousarray(image[top : top + h, left : left + w])
            yield path, fit_image(image, size, fit)


def _append_frames(path: Path, frames: Iterator[tuple[Path, np.ndarray]], max_frames: int | None,
                   progress: Callable[[int], None] | None) -> tuple[int, dict[str, int]]:
    """Stream ``frames`` into the raw file ``path``; returns the count and the frames per source file."""
    count, per_source = 0, {}
    with open(path, "wb") as fh:
        for source, frame in frames:
            if max_frames is not None and count >= max_frames:
                break
            fh.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
            per_source[str(source)] = per_source.get(str(source), 0) + 1
            count += 1
            if progress:
                progress(count)
    return count, per_source


def source_shape(src: str | Path) -> tuple[int, int]:
    """(height, width) of the first video or image of a source (or a store's frame size)."""
    src = Path(src)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if src.is_dir() and is_store(src):
        return FrameStore(src).size
    kind, files = source_files(src)
    if kind == "videos":
        info = video_info(files[0])
        return info["height"], info["width"]
    return read_image(files[0]).shape[:2]


def probe_source(src: str | Path) -> None:
    """Cheap checks of a pretraining source, before any heavy import: it exists, holds videos or
    images (or is a store), and its first file opens. Errors name the file."""

    src = Path(src)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if src.is_dir() and is_store(src):
        return
    kind, files = source_files(src)
    if kind == "videos":
        video_info(files[0])
    else:
        read_image(files[0])


def check_sampling(stride: int, fps: float | None, max_frames: int | None) -> None:
    """One line, before anything is decoded, for a sampling no video allows."""
    if stride < 1:
        raise EndopatError(f"--every {stride}: keep every n-th frame, n at least 1")
    if fps is not None and not 0 < fps < math.inf:  # NaN too
        raise EndopatError(f"--fps {fps}: frames per second must be a positive number")
    if max_frames is not None and max_frames < 1:
        raise EndopatError(f"--max-frames {max_frames}: at least 1")


def _built_with(out: Path, wanted: dict[str, Any]) -> bool:
    """``out`` holds a complete store made with the parameters ``wanted`` (a damaged store.json: no)."""
    return is_store(out) and (read_cache(out / STORE_META, dict[str, Any]) or {}).items() >= wanted.items()


def build_store(
    src: str | Path,
    out: str | Path,
    size: tuple[int, int] | None,
    stride: int = 1,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
    fps: float | None = None,
    crop_fov: bool = False,
    skip_bad: bool = False,
    log: Callable[[str], None] = print,
    fit: Fit = "letterbox",
) -> FrameStore:
    """Decode ``src`` (a video, a folder of videos, a folder of images, or a store) into ``out``.

    Frames are sampled every ``stride``-th (or at ``fps`` frames per second for videos), optionally
    cropped to the circular field of view (``crop_fov``), and placed into ``size`` (H, W; None: the
    source's own aspect, short side 256) by the ``fit`` rule (:mod:`endopat.data.geometry`:
    letterbox keeps the aspect ratio). A bad file is an error naming it, or with ``skip_bad`` a
    logged skip counted at the end. A complete store at ``out`` with the same parameters is reused
    (a killed pretraining resumes without decoding again); a store of the right size as ``src`` is
    used in place."""
    check_sampling(stride, fps, max_frames)
    src, out = Path(src), output_folder(out)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    size = aspect_size(source_shape(src)) if size is None else tuple(size)
    if src.is_dir() and is_store(src):
        store = FrameStore(src)
        if store.size != tuple(size):
            h, w = store.size
            raise EndopatError(f"{src}: frame store holds {h}x{w} frames, the model needs "
                               f"{size[0]}x{size[1]} (set model.image_size: [{h}, {w}])")
        return store
    kind, files = source_files(src)
    wanted = {"source": str(src.resolve()), "stride": stride, "fps": fps, "crop_fov": crop_fov,
              "max_frames": max_frames, "height": size[0], "width": size[1], "fit": fit}
    if _built_with(out, wanted):
        return FrameStore(out)  # built before with the same parameters (a resumed pretraining)
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    (out / STORE_META).unlink(missing_ok=True)
    skipped: list[str] = []

    def on_bad(err: EndopatError) -> None:
        if not skip_bad:
            raise err
        skipped.append(str(err))
        log(f"skipped: {err}")

    frames = _iter_source(kind, files, size, stride, fps, crop_fov, fit, on_bad)
    count, per_source = _append_frames(out / STORE_DATA, frames, max_frames, progress)
    if count == 0:
        raise EndopatError(f"{src}: no frames could be read")
    if skipped:
        log(f"skipped {len(skipped)} bad file(s); {count} frames stored")
    meta = dict(wanted, count=count, kind=kind, skipped=skipped,
                sources=[{"path": p, "frames": n} for p, n in per_source.items()])
    atomic_write_text(out / STORE_META, json.dumps(meta, indent=1))
    return FrameStore(out)
