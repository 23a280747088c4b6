"""Atomic file writes and image reading with errors that name the file.

Every result file is written to a temporary sibling and moved into place with ``os.replace``, so a
run killed at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from endopat.errors import EndopatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_csv(path: str | Path, fields: Sequence[str], rows: Iterable[Mapping]) -> None:
    """Write ``rows`` (dicts; keys beyond ``fields`` ignored, None as empty) as CSV, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    atomic_write_text(path, buf.getvalue())


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Read an image as a uint8 array (``H, W, 3`` for RGB, ``H, W`` for L); clear error if bad."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if mode == "RGB" and im.mode != "RGB":
                im = im.convert("RGB")
            elif mode == "raw":
                pass
            elif mode == "L" and im.mode != "L":
                im = im.convert("L")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise EndopatError(f"{path}: not a readable image ({err})") from None


def write_png(path: str | Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def file_digest(path: str | Path) -> str:
    """sha256 of a file (cached exports, provenance of weights files)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
