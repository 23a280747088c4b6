"""Labeled segmentation data: samples, how mask files read, loading.

A :class:`Sample` is one labeled frame: image path, mask path and its group (the video or procedure
it comes from, which keeps train and test video-disjoint), and the classes its mask means
(:class:`endopat.labels.Labels`; binary instrument segmentation unless the data says otherwise).
Readers for the public dataset layouts return the same samples; :func:`load_mask` reads a frame's
class-id mask (uint8: ids, ``labels.ignore`` where unlabeled) and :func:`load_pairs` turns samples
into arrays at the network's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from endopat.data.geometry import Fit, fit_image, fit_mask
from endopat.data.masks import MASK_ENCODINGS, MaskFormat
from endopat.errors import EndopatError, reading
from endopat.io import read_image
from endopat.labels import BINARY, Labels

SPLITS = ("train", "val", "test")
# a trailing frame index, and the time stamp `endopat suggest` adds after it (vid03_f000012_t0.48s)
_TRAILING_INDEX = re.compile(r"^(.*?)[_\-. ]*(?:f|frame)?\d+(?:_t\d+(?:\.\d+)?s)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One labeled frame.

    ``masks``: the mask files whose union is the frame's mask (EndoVis keeps one file per
    instrument; where files overlap, a later file's classes win); empty for a labeled frame that shows
    only background. ``encoding`` names how a mask file's values map to classes (see
    :data:`MASK_ENCODINGS`), ``labels`` the classes. ``crop`` is ``(top, left, height, width)`` applied
    to image and mask alike.
    """

    image: Path
    masks: tuple[Path, ...]
    group: str
    id: str
    encoding: str = "binary"
    crop: tuple[int, int, int, int] | None = None
    split: str | None = None  # a split the dataset itself defines (e.g. Kvasir's test.txt)
    problem: str | None = None  # why this frame cannot be used (e.g. its mask file is missing)
    mask_format: MaskFormat = MaskFormat()  # how a generic mask's values read (threshold, class map)
    labels: Labels = BINARY  # what the mask's ids mean

    def with_format(self, fmt: MaskFormat) -> "Sample":
        """This sample read with ``fmt`` (its class list, when it gives one)."""
        if self.encoding in ("binary", "ids") and fmt.labels is not None:
            return replace(self, mask_format=fmt, labels=fmt.labels,
                           encoding="ids" if fmt.classes is not None else "binary")
        return replace(self, mask_format=fmt)


def chunked(samples: list[Sample], n: int) -> list[Sample]:
    """The samples regrouped into runs of ``n`` consecutive frames of each group (by id):
    ``video00`` -> ``video00_c00``, ``video00_c01``, ... (order kept)."""
    rank: dict[str, int] = {}
    for group in dict.fromkeys(s.group for s in samples):
        for k, s in enumerate(sorted((s for s in samples if s.group == group), key=lambda s: s.id)):
            rank[s.id] = k
    return [replace(s, group=f"{s.group}_c{rank[s.id] // n:02d}") for s in samples]


def group_of(stem: str) -> str:
    """The video a frame belongs to, from its stem: ``vid03_f012`` -> ``vid03``; ``endopat suggest``'s
    ``vid03_f000012_t0.48s`` -> ``vid03``."""
    m = _TRAILING_INDEX.match(stem)
    return m.group(1) if m and m.group(1) else stem


def _apply_crop(array: np.ndarray, crop: tuple[int, int, int, int] | None, path: Path) -> np.ndarray:
    if crop is None:
        return array
    top, left, h, w = crop
    if array.shape[0] < top + h or array.shape[1] < left + w:
        raise EndopatError(f"{path}: {array.shape[1]}x{array.shape[0]} is too small for the crop "
                           f"{w}x{h} at ({top}, {left})")
    return array[top : top + h, left : left + w]


def load_image(sample: Sample) -> np.ndarray:
    return _apply_crop(read_image(sample.image), sample.crop, sample.image)


def load_mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    """The class-id mask of ``sample`` (uint8 ``(h, w)`` after its crop: ids of ``sample.labels``, its
    ignore id where unlabeled; binary: 0/1), checked against ``shape``."""
    if sample.problem:
        raise EndopatError(sample.problem)
    decode = MASK_ENCODINGS[sample.encoding].decode
    mask = np.zeros(shape, dtype=np.uint8)
    for path in sample.masks:
        with reading(path, "mask"):
            part = _apply_crop(decode(read_image(path, mode="raw"), path, sample), sample.crop, path)
        if part.shape != tuple(shape):
            raise EndopatError(
                f"{path}: mask size {part.shape[1]}x{part.shape[0]} != image size "
                f"{shape[1]}x{shape[0]} of {sample.image}"
            )
        if part.dtype == bool:  # binary: the union of the files
            mask |= part
        else:  # class ids: a later file's classes over an earlier one's
            np.copyto(mask, part, where=part != 0)
    return mask


def load_pairs(samples: list[Sample], size: tuple[int, int], skip_bad: bool = False,
               log=print, fit: Fit = "letterbox") -> tuple[np.ndarray, np.ndarray]:
    """Read samples at ``size`` (H, W): images ``(N, H, W, 3)`` uint8, class-id masks ``(N, H, W)``
    uint8, each pair placed by the same ``fit`` rule (:mod:`endopat.data.geometry`).

    A bad sample (unreadable file, mask of another size, non-binary mask) is an error naming the
    file; with ``skip_bad`` it is logged, left out, and the skips are counted at the end.
    """
    if not samples:
        raise EndopatError("no labeled samples to load")
    images = np.empty((len(samples), *size, 3), dtype=np.uint8)
    masks = np.empty((len(samples), *size), dtype=np.uint8)
    n, skipped = 0, 0
    for s in samples:
        try:
            img = load_image(s)
            mask = load_mask(s, img.shape[:2])
        except EndopatError as err:
            if not skip_bad:
                raise
            log(f"skipped: {err}")
            skipped += 1
            continue
        images[n] = fit_image(img, size, fit)
        masks[n] = fit_mask(mask, size, fit)
        n += 1
    if skipped:
        log(f"skipped {skipped} bad sample(s) of {len(samples)}")
    if n == 0:
        raise EndopatError("no readable labeled samples")
    return images[:n], masks[:n]
