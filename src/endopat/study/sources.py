"""A study's pretraining sources and its test split: which frames of a source belong to the test
split, and the source without them.

A file of an unlabeled source (an image, or a whole video) belongs to the test split when it is

* the **same file** as a test image (the same path, once resolved),
* the **same pixels** as a test image (an image whose decoded RGB equals one; compared only where
  the sizes match, so a folder of other videos' frames costs one header read per file),
* or from the **same video** (group) as a test image: the group the labeled readers give its name
  (``OP3_img_07.png`` -> ``OP3_img``, :func:`endopat.data.labeled.group_of`; a video file's group is
  its stem, ``vid03.mp4`` -> ``vid03``).

A file counts once, under the first reason that holds. With ``test_frames: exclude`` (the default,
docs/method.md) the study pretrains on a view of the source without those files: a folder of links
to the others, ``RUN/sources/<name>/view/``. ``test_frames: keep`` pretrains on all of them, the
paper's transductive setting (its unlabeled videos include the test images' videos). ``every: n``
thins a folder of images to every n-th file (in name order) before anything else: a smaller
pretraining set from the same source, for volume ablations. Either way
``RUN/sources/<name>/overlap.json`` records the counts, and the report prints them beside the
pretraining.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel

from endopat.data.frames import source_files
from endopat.data.store import FrameStore, is_store
from endopat.data.labeled import Sample, group_of
from endopat.errors import EndopatError
from endopat.io import atomic_write_text, read_cache, read_image, read_record
from endopat.semi import SEMI
from endopat.semi.unlabeled import NOT_NEIGHBOURS, neighbour_likeness

REASONS = ("same file", "same pixels", "same video")


@dataclass
class Overlap:
    """How much of one pretraining source belongs to the test split, and what the study uses."""

    name: str
    source: str  # the source as configured (resolved)
    setting: str  # exclude | keep
    kind: Literal["images", "videos", "store"]
    files: int  # files of the source (a store: its frames)
    test: dict[str, int] = field(default_factory=dict)  # reason -> files that belong to the test split
    names: list[str] = field(default_factory=list)  # those files' names
    used: str = ""  # what pretraining reads: the source, or its view without the test files
    every: int = 1  # the source thinned to every n-th file

    @property
    def n_test(self) -> int:
        return sum(self.test.values())

    def sentence(self) -> str:
        """One line for the report: '40 of 120 frames are from the test split (40 same file); left out'."""
        unit = {"videos": "videos", "images": "frames", "store": "frames"}[self.kind]
        if self.every > 1:
            unit += f" (one file in {self.every})"
        if not self.n_test:
            return f"none of its {self.files} {unit} is from the test split"
        why = ", ".join(f"{n} {r}" for r, n in self.test.items() if n)
        what = (f"left out: pretraining used the other {self.files - self.n_test}" if self.setting == "exclude"
                else "kept (test_frames: keep, the paper's transductive setting): pretraining saw them")
        return f"{self.n_test} of {self.files} {unit} are from the test split ({why}); {what}"


class _OverlapRecord(BaseModel):
    """``sources/<name>/overlap.json``: the overlap and the key (source, setting, thinning, test split) it holds for."""

    key: str
    overlap: Overlap


def _pixels_key(image: np.ndarray) -> str:
    return hashlib.sha256(str(image.shape).encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError:
        return None  # unreadable: pretraining itself names it


def _files(source: Path, every: int) -> tuple[str, list[Path]]:
    kind, files = source_files(source)
    if every > 1 and kind != "images":
        raise EndopatError(f"{source}: 'every' thins a folder of images; for videos set pretrain.frame_stride")
    return kind, files[::every]


def find_overlap(name: str, source: Path, test: list[Sample], setting: str, every: int = 1) -> Overlap:
    """Which files of ``source`` (every ``every``-th) belong to the ``test`` samples (see the
    module docstring)."""
    test_files = {Path(s.image).resolve() for s in test}
    test_groups = {s.group for s in test}
    if source.is_dir() and is_store(source):
        if every > 1:
            raise EndopatError(f"{source}: 'every' thins a folder of images, not a frame store")
        store = FrameStore(source)
        counts, names = {r: 0 for r in REASONS}, []
        for entry in store.meta.get("sources", []):
            p = Path(entry["path"])
            group = p.stem if store.meta.get("kind") == "videos" else group_of(p.stem)
            reason = "same file" if p.resolve() in test_files else "same video" if group in test_groups else None
            if reason:
                counts[reason] += entry["frames"]
                names.append(p.name)
        return Overlap(name, str(source), setting, "store", len(store), counts, names, str(source))
    kind, files = _files(source, every)
    by_size: dict[tuple[int, int], set[str]] = {}
    if kind == "images":  # test images' pixels, by size
        for s in test:
            if s.crop is None:
                im = read_image(s.image)
                by_size.setdefault(im.shape[:2], set()).add(_pixels_key(im))
    counts, names = {r: 0 for r in REASONS}, []
    for p in files:
        reason = None
        if p.resolve() in test_files:
            reason = "same file"
        elif kind == "images" and (keys := by_size.get(_image_size(p))) and _pixels_key(read_image(p)) in keys:
            reason = "same pixels"
        elif (p.stem if kind == "videos" else group_of(p.stem)) in test_groups:
            reason = "same video"
        if reason:
            counts[reason] += 1
            names.append(p.name)
    return Overlap(name, str(source), setting, kind, len(files), counts, names, str(source), every)


def _view(source: Path, every: int, leave_out: set[str], folder: Path) -> Path:
    """A folder of links to every ``every``-th file of ``source`` whose name is not in ``leave_out``."""
    _, files = _files(source, every)
    if folder.exists():
        shutil.rmtree(folder)
    tmp = folder.with_name(f".{folder.name}.endopat-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for p in files:
        if p.name not in leave_out:
            os.symlink(p.resolve(), tmp / p.name)
    os.replace(tmp, folder)
    return folder


def prepare_source(name: str, source: Path, test: list[Sample], setting: str, out: Path, every: int = 1
                   ) -> Overlap:
    """Find the overlap of one source (every ``every``-th file) with the test split and, with
    ``exclude`` or ``every`` > 1, make the view pretraining reads; both are kept in
    ``out/sources/<name>/`` and reused while source, setting, thinning and test split are the same."""
    folder = out / "sources" / name
    record = folder / "overlap.json"
    key = hashlib.sha256(json.dumps([str(source), setting, every, sorted(s.id for s in test)]).encode()).hexdigest()
    saved = read_cache(record, _OverlapRecord)  # None: not found yet, or damaged (found again)
    if saved is not None and saved.key == key:
        return saved.overlap
    overlap = find_overlap(name, source, test, setting, every)
    leave_out = set(overlap.names) if setting == "exclude" else set()
    if leave_out and overlap.kind == "store":
        raise EndopatError(f"{source}: a frame store with {overlap.n_test} frames of the test split; give the "
                           "folder it was made from (or test_frames: keep)")
    if leave_out and overlap.files == overlap.n_test:
        raise EndopatError(f"{source}: every file is from the test split; nothing is left to pretrain on "
                           "(test_frames: keep pretrains on them)")
    if leave_out or every > 1:
        overlap.used = str(_view(source, every, leave_out, folder / "view"))
    atomic_write_text(record, json.dumps({"key": key, "overlap": asdict(overlap)}, indent=1))
    return overlap


def pretraining_source(out: Path, name: str) -> Path:
    """What a study's pretraining on source ``name`` reads (written by :func:`prepare_source`)."""
    record = out / "sources" / name / "overlap.json"
    if not record.is_file():
        raise EndopatError(f"{record}: missing; run the study (it finds each source's test frames first)")
    return Path(read_record(record, "pretraining source record", _OverlapRecord).overlap.used)


def semi_store(out: Path, source: str, model, fps: float) -> Path:
    """The frame store semi-supervised cells draw ``source``'s frames from, at ``model``'s size."""
    h, w = model.image_size
    return out / "sources" / source / f"store-{h}x{w}-{model.fit}-fps{fps}"


def pair_likeness(out: Path, cfg) -> list[tuple[str, str]]:
    """For each row of temporal pairs whose store is built, its name and how alike its pairs are,
    against any two frames of one video (:func:`endopat.semi.unlabeled.neighbour_likeness`; near 1,
    the method's small-motion assumption does not hold there)."""
    lines = []
    for m in cfg.methods:
        if m.semi is None or not SEMI[m.semi.method].pairs:
            continue
        store = semi_store(out, m.semi.source, cfg.model, m.semi.fps)
        try:
            r = neighbour_likeness(FrameStore(store), m.semi.gap) if is_store(store) else None
        except EndopatError:  # a damaged store: the report says nothing of it rather than stop
            r = None
        if r is not None:
            lines.append((m.name, f"its pairs, {m.semi.gap} frames apart in the source '{m.semi.source}', differ "
                          f"{r:.2f}x as much as any two frames of one video" + (
                              " - no more alike than random frames: the small motion the method assumes is not there"
                              if r >= NOT_NEIGHBOURS else "")))
    return lines
