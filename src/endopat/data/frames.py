"""Frame stores: unlabeled frames decoded once, at training size, for fast random access.

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
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from endopat.errors import EndopatError
from endopat.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, atomic_write_text, list_images, list_videos

STORE_META = "store.json"
STORE_DATA = "frames.u8"


def is_store(path: Path) -> bool:
    return (path / STORE_META).is_file() and (path / STORE_DATA).is_file()


class FrameStore:
    """Read-only random access to a frame store: ``store[i]`` is an ``(H, W, 3)`` uint8 array."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not is_store(self.root):
            raise EndopatError(f"{self.root}: not a frame store (no {STORE_META} + {STORE_DATA})")
        self.meta = json.loads((self.root / STORE_META).read_text())
        self.shape = (self.meta["count"], self.meta["height"], self.meta["width"], 3)
        self._data: np.memmap | None = None

    @property
    def data(self) -> np.memmap:
        if self._data is None:  # opened lazily so the store pickles cheaply into loader workers
            self._data = np.memmap(self.root / STORE_DATA, dtype=np.uint8, mode="r", shape=self.shape)
        return self._data

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array(self.data[i])  # a writable copy

    @property
    def size(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]


def _source_files(src: Path) -> tuple[str, list[Path]]:
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


def _iter_source(kind: str, files: list[Path], size: tuple[int, int], stride: int
                 ) -> Iterator[tuple[Path, np.ndarray]]:
    from endopat.data.labeled import resize_rgb
    from endopat.data.video import iter_frames
    from endopat.io import read_image

    if kind == "videos":
        for path in files:
            for _, frame in iter_frames(path, stride=stride, size=size):
                yield path, frame
    else:
        for path in files[::stride]:
            yield path, resize_rgb(read_image(path), size)


def build_store(
    src: str | Path,
    out: str | Path,
    size: tuple[int, int],
    stride: int = 1,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> FrameStore:
    """Decode ``src`` (a video, a folder of videos, a folder of images, or a store) into ``out``.

    An existing complete store at ``out`` built with the same parameters is reused, so a killed
    pretraining resumes without decoding again. ``src`` that already is a store of the right size
    is used in place.
    """
    src, out = Path(src), Path(out)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if src.is_dir() and is_store(src):
        store = FrameStore(src)
        if store.size != tuple(size):
            raise EndopatError(f"{src}: frame store holds {store.size} frames, the model needs {size}")
        return store
    kind, files = _source_files(src)
    wanted = {"source": str(src.resolve()), "stride": stride, "max_frames": max_frames,
              "height": size[0], "width": size[1]}
    if is_store(out):
        meta = json.loads((out / STORE_META).read_text())
        if all(meta.get(k) == v for k, v in wanted.items()):
            return FrameStore(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / STORE_META).unlink(missing_ok=True)
    count, per_source = 0, {}
    with open(out / STORE_DATA, "wb") as fh:
        for path, frame in _iter_source(kind, files, size, stride):
            if max_frames is not None and count >= max_frames:
                break
            fh.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
            per_source[str(path)] = per_source.get(str(path), 0) + 1
            count += 1
            if progress:
                progress(count)
    if count == 0:
        raise EndopatError(f"{src}: no frames could be read")
    meta = dict(wanted, count=count, kind=kind,
                sources=[{"path": p, "frames": n} for p, n in per_source.items()])
    atomic_write_text(out / STORE_META, json.dumps(meta, indent=1))
    return FrameStore(out)
