"""Atomic file writes and image reading with errors that name the file.

Every result file is written to a temporary sibling and moved into place with ``os.replace``, so a
run killed at any moment leaves either the old file or the new one, never half of one. A kill can
leave the temporary file itself: it is hidden (``.<name>.<random>.endopat-tmp<suffix>``), every
listing of data skips hidden files (:func:`is_hidden`), and a resumed run removes its own
(:func:`remove_leftovers`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from endopat.errors import EndopatError, reading, validation_message

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg")
TEMP_MARK = ".endopat-tmp"  # in the name of every temporary file atomic_path makes


def is_hidden(path: str | Path) -> bool:
    """A hidden file (``.name``): a temporary file of ours, or a system's (macOS ``._x.png``); never data."""
    return Path(path).name.startswith(".")


def remove_leftovers(folder: str | Path) -> int:
    """Delete the temporary files a killed run left anywhere below ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.rglob(f".*{TEMP_MARK}*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def output_folder(path: str | Path) -> Path:
    """``path`` as a folder to write into: an existing file there is an error naming it (checked
    before any work, so that nothing is computed for a place it cannot be written)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EndopatError(f"{path}: exists and is not a folder (give a folder for the outputs)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise EndopatError(f"{parent}: is a file, so {path} cannot be made")
            break
    return path


def output_file(path: str | Path) -> Path:
    """``path`` as a file to write: a folder there, or a file where its folder should be, is an error."""
    path = Path(path)
    if path.is_dir():
        raise EndopatError(f"{path}: is a folder (give a file name)")
    output_folder(path.parent)
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK + path.suffix, dir=path.parent)
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


def read_record(path: str | Path, what: str, shape: Any) -> Any:
    """A JSON file endopat wrote itself (a resume record, a cache, a server's state), validated as
    ``shape`` (a pydantic model, a dataclass or a type such as ``dict[str, Any]``): whatever its
    bytes — a disk that lost a block, a hand edit — one line naming the file."""
    with reading(path, what):
        try:
            return TypeAdapter(shape).validate_json(Path(path).read_bytes())
        except ValidationError as err:
            raise EndopatError(f"{path}: not a readable {what} ({validation_message(err)})") from None


def read_cache(path: str | Path, shape: Any) -> Any | None:
    """A cache endopat wrote itself (:func:`read_record`), or None when it is missing or unreadable:
    the caller computes it again, and nothing a run computed is lost to a damaged cache."""
    try:
        return read_record(path, "cache", shape) if Path(path).is_file() else None
    except EndopatError:
        return None


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Read an image as a uint8 array (``H, W, 3`` for RGB, ``H, W`` for L); clear error if bad."""

    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: file not found")
    with reading(path, "image"), Image.open(path) as im:
        im.load()
        if mode == "RGB" and im.mode != "RGB":
            im = im.convert("RGB")
        elif mode == "L" and im.mode != "L":
            im = im.convert("L")
        return np.asarray(im)


def write_png(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p))


def list_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not is_hidden(p))


def file_digest(path: str | Path) -> str:
    """sha256 of a file (cached exports, provenance of weights files)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
