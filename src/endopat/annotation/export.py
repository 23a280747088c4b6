"""What every export reader shares: the export as files (a file, a folder or a zip), the frames it
annotates, shapes turned into masks, and the choice of labels.

A reader returns :class:`Annotated` frames: the image's name as the export gives it, its size,
the instrument mask (the union of the chosen labels' shapes), the labels and annotator it came
from, and the group (video, task) the export names. Every problem is an :class:`EndopatError`
naming the export file and the frame.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from endopat.errors import EndopatError
from endopat.labels import BINARY, Labels


class ExportFiles:
    """An export's files by relative path: a single file, a folder, or a .zip (CVAT's downloads)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise EndopatError(f"{self.path}: not found")
        if self.path.is_dir():
            self._names = sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file())
        elif zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as z:
                self._names = sorted(n for n in z.namelist() if not n.endswith("/"))
        else:
            self._names = [self.path.name]

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str) -> bytes:
        if self.path.is_dir():
            return (self.path / name).read_bytes()
        if zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as z:
                return z.read(name)
        return self.path.read_bytes()

    def where(self, name: str) -> str:
        """How an error names one of the export's files."""
        return str(self.path if not (self.path.is_dir() or zipfile.is_zipfile(self.path))
                   else f"{self.path}/{name}" if self.path.is_dir() else f"{self.path}:{name}")

    def find(self, *suffixes: str) -> list[str]:
        return [n for n in self._names if n.lower().endswith(suffixes) and not Path(n).name.startswith(".")]


def json_export(files: ExportFiles, opening: str, marker: str = "") -> tuple[str, Any] | None:
    """``(name, data)`` of the export's first JSON file whose text opens with ``opening`` (``{`` or
    ``[``) and mentions ``marker`` near its start; None when there is none or it does not parse."""
    for name in files.find(".json"):
        head = files.read(name)[:4000].decode("utf-8", "replace").lstrip()
        if head.startswith(opening) and marker in head:
            try:
                return name, json.loads(files.read(name))
            except ValueError:
                return None
    return None


@dataclass
class Annotated:
    """One annotated frame of an export."""

    name: str  # the image as the export names it (matched against --images by file name)
    size: tuple[int, int] | None  # (height, width), when the export says
    mask: np.ndarray | None = None  # class-id mask (uint8; binary: 1 instrument); None: no shape (all background)
    labels: list[str] = field(default_factory=list)  # the chosen labels found on it
    annotator: str = ""
    group: str | None = None  # the video or task the export names
    where: str = ""  # the export file (and frame) for messages and the manifest

    def __post_init__(self):  # one check for every reader: an export's name field can hold anything
        if not isinstance(self.name, str) or not self.name.strip():
            raise EndopatError(f"{self.where}: an image without a file name ({self.name!r})")


@dataclass
class Parsed:
    tool: str
    frames: list[Annotated]
    labels: list[str]  # every label the export defines
    left_out: Counter = field(default_factory=Counter)  # shapes and frames not imported, by reason


@dataclass(frozen=True)
class LabelChoice:
    """Which of an export's labels are imported, and as which class: ``wanted`` are ``--label``
    values (a label name, or ``NAME=CLASS``), ``classes`` the target's classes (binary: every chosen
    label is the instrument)."""

    wanted: tuple[str, ...] = ()
    classes: Labels = BINARY


def choose_labels(defined: list[str], wanted: "LabelChoice | list[str] | None", where: str) -> dict[str, int]:
    """The export's labels that are imported, each with its class id.

    Binary: ``wanted`` (each must exist), else the export's only label, else one named
    ``instrument``; otherwise an error listing them. Multi-class: each label the export defines is
    the class of its name (case, spaces and underscores aside), or the class ``NAME=CLASS`` maps it to
    (``CLASS`` may be ``ignore``); a label that is neither is an error naming it, unless plain names in
    ``wanted`` restrict the import to those."""
    choice = wanted if isinstance(wanted, LabelChoice) else LabelChoice(tuple(wanted or ()))
    plain = [w for w in choice.wanted if "=" not in w]
    mapped = dict(w.split("=", 1) for w in choice.wanted if "=" in w)
    missing = [w for w in [*plain, *mapped] if w not in defined]
    if missing:
        raise EndopatError(f"{where}: label '{missing[0]}' does not exist (labels: {', '.join(defined) or 'none'})")
    classes = choice.classes
    if classes.is_binary and not mapped:
        if plain:
            return dict.fromkeys(plain, 1)
        if len(defined) == 1:
            return dict.fromkeys(defined, 1)
        if "instrument" in defined:
            return {"instrument": 1}
        raise EndopatError(f"{where}: labels {', '.join(defined) or 'none'}: choose which mean instrument with --label")
    out = {}
    for label in defined:
        name = mapped.get(label, label)
        if plain and label not in plain and label not in mapped:
            continue
        if name.strip().lower() == "ignore" and classes.ignore is not None:
            out[label] = classes.ignore
            continue
        try:
            out[label] = classes.id_of(name)
        except EndopatError:
            raise EndopatError(f"{where}: label '{label}' is not a class ({classes.describe()}); map it with "
                               f"--label '{label}=CLASS'") from None
    return out


def paint(mask: np.ndarray, region: np.ndarray, class_id: int) -> None:
    """Draw ``region`` (bool) into the class-id ``mask`` as ``class_id`` (a later shape over an earlier one)."""
    mask[region] = class_id


def export_size(height: Any, width: Any, where: str) -> tuple[int, int]:
    """The ``(height, width)`` an export states for an image, checked before a mask of that size is made."""
    try:
        size = (int(height), int(width))
    except (TypeError, ValueError, OverflowError):
        raise EndopatError(f"{where}: no width and height") from None
    if min(size) < 1 or size[0] * size[1] > 2 * Image.MAX_IMAGE_PIXELS:
        raise EndopatError(f"{where}: an image of {size[1]}x{size[0]} pixels (no image endopat reads has that size)")
    return size


def blank_image(where: str, file: Any, height: Any, width: Any, seen: set) -> tuple[str, tuple[int, int], np.ndarray]:
    """One image of an export, before its shapes: where it is (for errors), its checked size and an
    empty class-id mask; a file name met twice in one export is one line."""
    here = f"{where}: image '{file}'"
    if file in seen:
        raise EndopatError(f"{where}: two images named '{file}'")
    seen.add(file)
    size = export_size(height, width, here)
    return here, size, np.zeros(size, np.uint8)


def polygon_mask(points: list[tuple[float, float]], size: tuple[int, int], where: str) -> np.ndarray:
    """A polygon in pixel coordinates filled as COCO's tools (pycocotools) fill it — the rule CVAT
    (through Datumaro) and Roboflow use when they turn polygons into masks: a pixel is inside when
    its centre is."""
    from pycocotools import mask as mask_utils  # imported when a polygon or RLE is read

    if len(points) < 3:
        raise EndopatError(f"{where}: a polygon with {len(points)} point(s) (at least 3 are needed)")
    h, w = size
    flat = [float(v) for xy in points for v in xy]
    # pycocotools crashes on a NaN and rasterises a far point's whole edge first (memory grows with it)
    if not all(math.isfinite(v) for v in flat):
        raise EndopatError(f"{where}: a polygon point that is not a number")
    if not (-w <= min(flat[0::2]) and max(flat[0::2]) <= 2 * w and -h <= min(flat[1::2]) and max(flat[1::2]) <= 2 * h):
        raise EndopatError(f"{where}: a polygon point lies more than the image's own size outside the {w}x{h} image")
    rle = mask_utils.frPyObjects([flat], h, w)
    return mask_utils.decode(rle)[..., 0].astype(bool)


def runs_mask(runs: list[int], box: tuple[int, int, int, int], size: tuple[int, int], where: str) -> np.ndarray:
    """CVAT's mask shape: run lengths (background first) over the box ``(left, top, width, height)``."""
    left, top, bw, bh = box
    if sum(runs) != bw * bh:
        raise EndopatError(f"{where}: mask runs add up to {sum(runs)} pixels, its {bw}x{bh} box has {bw * bh}")
    h, w = size
    if left < 0 or top < 0 or left + bw > w or top + bh > h:
        raise EndopatError(f"{where}: mask box {bw}x{bh} at ({left}, {top}) lies outside the {w}x{h} image")
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    out = np.zeros(size, bool)
    out[top : top + bh, left : left + bw] = flat.reshape(bh, bw)
    return out
