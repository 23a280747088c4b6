"""Labeled instrument-segmentation data: samples, the generic images/ + masks/ layout, loading.

A :class:`Sample` is one labeled frame: image path, mask path and its group (the video or procedure
it comes from, which keeps train and test video-disjoint). Readers for the public dataset layouts
return the same samples; :func:`load_pairs` turns samples into tensors at the network's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from endopat.data.geometry import Fit, fit_image, fit_mask
from endopat.errors import EndopatError, reading
from endopat.io import read_image

SPLITS = ("train", "val", "test")
# a trailing frame index, and the time stamp `endopat suggest` adds after it (vid03_f000012_t0.48s)
_TRAILING_INDEX = re.compile(r"^(.*?)[_\-. ]*(?:f|frame)?\d+(?:_t\d+(?:\.\d+)?s)?$", re.IGNORECASE)


@dataclass(frozen=True)
class MaskFormat:
    """How a generic mask file's values become "instrument".

    Without a class map: 0/1 and 0/255 masks read exactly; any other grey mask (a JPEG's ringing, a
    16-bit 0/65535 PNG) is instrument where its value is at least ``threshold`` of the type's range
    (255 for 8 bits, 65535 for 16); a colour-coded mask is an error asking for a class map.
    ``class_map``: (value, instrument?) pairs, a value being a grey or palette level or an (r, g, b)
    triple; a value the map does not name is an error."""

    threshold: float = 0.5
    class_map: tuple[tuple[int | tuple[int, int, int], bool], ...] = ()

    @classmethod
    def parse(cls, threshold: float = 0.5, class_map: dict[str, str] | str | None = None,
              source: str = "mask format") -> "MaskFormat":
        """From a config (``{"255,0,0": "instrument", "0": "background"}``) or a CLI string
        (``"255,0,0=instrument;0,0,0=background"``); a bad one is a one-line error."""
        with reading(source, "class map"):
            return cls._parse(threshold, class_map, source)

    @classmethod
    def _parse(cls, threshold: float, class_map: dict[str, str] | str | None, source: str) -> "MaskFormat":
        if not 0 < threshold < 1:
            raise EndopatError(f"{source}: mask threshold {threshold} must be between 0 and 1 (a share of the "
                               "value range, e.g. 0.5)")
        if isinstance(class_map, str):
            try:
                class_map = dict(item.split("=") for item in class_map.split(";") if item.strip())
            except ValueError:
                raise EndopatError(f"{source}: class map '{class_map}': write VALUE=instrument;VALUE=background, "
                                   "a value being 0-255 or R,G,B") from None
        pairs = []
        for key, label in (class_map or {}).items():
            parts = [p.strip() for p in str(key).split(",")]
            if len(parts) not in (1, 3) or not all(p.isdigit() and int(p) < 65536 for p in parts):
                raise EndopatError(f"{source}: class map key '{key}' is not a value (0-65535) or an R,G,B triple")
            if str(label).strip() not in ("instrument", "background"):
                raise EndopatError(f"{source}: class map value '{label}' for '{key}': write instrument or background")
            value = int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)
            pairs.append((value, str(label).strip() == "instrument"))
        if pairs and not any(inst for _, inst in pairs):
            raise EndopatError(f"{source}: the class map names no instrument value")
        return cls(threshold, tuple(pairs))


@dataclass(frozen=True)
class Sample:
    """One labeled frame.

    ``masks``: the mask files whose union is the instrument mask (EndoVis keeps one file per
    instrument); empty for a labeled frame that shows no instrument. ``encoding`` names how a mask
    file's values map to "instrument" (see :data:`MASK_ENCODINGS`). ``crop`` is ``(top, left, height,
    width)`` applied to image and mask alike.
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


def _grey(raw: np.ndarray, path: Path) -> np.ndarray:
    """A grey mask: RGB(A) with equal channels reads as its first; a colour-coded one is an error."""
    if raw.ndim == 3:
        rgb = raw[..., :3]
        if not (rgb == rgb[..., :1]).all():
            colours = np.unique(rgb.reshape(-1, 3), axis=0)
            shown = ", ".join("(" + ",".join(map(str, c)) + ")" for c in colours[:4])
            raise EndopatError(f"{path}: colour-coded mask ({len(colours)} colours: {shown}"
                               f"{' ...' if len(colours) > 4 else ''}); give a class map, e.g. "
                               "--class-map '255,0,0=instrument;0,0,0=background'")
        raw = raw[..., 0]
    return raw


def generic_mask(raw: np.ndarray, path: Path, fmt: MaskFormat = MaskFormat()) -> np.ndarray:
    """A generic mask file's instrument pixels (:class:`MaskFormat` says how)."""
    if fmt.class_map:
        return _mapped(raw, path, fmt)
    raw = _grey(raw, path)
    if raw.dtype == bool or set(np.unique(raw).tolist()) <= {0, 1}:
        return raw > 0
    top = 65535 if raw.dtype.itemsize >= 2 else 255  # 16-bit PNGs read as uint16 (or int32)
    return raw >= fmt.threshold * top


def _mapped(raw: np.ndarray, path: Path, fmt: MaskFormat) -> np.ndarray:

    triples = any(isinstance(v, tuple) for v, _ in fmt.class_map)
    if triples:  # colours: compare RGB (a palette mask is expanded to its colours)
        rgb = read_image(path, mode="RGB").astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        key = lambda v: (v[0] << 16) | (v[1] << 8) | v[2] if isinstance(v, tuple) else (v << 16) | (v << 8) | v  # noqa: E731
    else:
        code, key = (raw[..., 0] if raw.ndim == 3 else raw).astype(np.int64), int
    known = np.array([key(v) for v, _ in fmt.class_map])
    unmapped = np.setdiff1d(np.unique(code), known)
    if unmapped.size:
        show = (lambda c: f"({c >> 16},{(c >> 8) & 255},{c & 255})") if triples else str
        raise EndopatError(f"{path}: mask values {', '.join(show(int(c)) for c in unmapped[:4])}"
                           f"{' ...' if unmapped.size > 4 else ''} are not in the class map")
    return np.isin(code, [key(v) for v, inst in fmt.class_map if inst])


def describe_mask(raw: np.ndarray) -> str:
    """The encoding of a mask file, for ``inspect``: 0/1, 0/255, 16-bit, lossy grey or colour."""
    if raw.ndim == 3 and not (raw[..., :3] == raw[..., :1]).all():
        return f"colour-coded ({len(np.unique(raw[..., :3].reshape(-1, 3), axis=0))} colours)"
    grey = raw[..., 0] if raw.ndim == 3 else raw
    values = set(np.unique(grey).tolist())
    bits = "16-bit" if grey.dtype.itemsize >= 2 else "8-bit"
    if values == {0}:
        return f"{bits} all 0 (no instrument)"
    if values <= {0, 1}:
        return f"{bits} 0/1"
    if values <= {0, 255} or values <= {0, 65535}:
        return f"{bits} 0/{max(values)}"
    return f"{bits} grey, {len(values)} levels (lossy or soft: thresholded)"


def _channel0(raw: np.ndarray) -> np.ndarray:
    return raw[..., 0] if raw.ndim == 3 else raw


def _values(raw: np.ndarray) -> str:
    values = np.unique(_channel0(raw)).tolist()
    return "/".join(map(str, values)) if len(values) <= 6 else f"{len(values)} values"


CHOLECSEG8K_INSTRUMENT = (31, 32)  # watershed classes: grasper, L-hook


@dataclass(frozen=True)
class MaskEncoding:
    """How a reader's mask files mean "instrument": ``decode(raw, path, fmt)`` -> bool mask, and
    ``describe(raw, fmt)`` -> what ``inspect`` prints for one file."""

    decode: Callable[[np.ndarray, Path, MaskFormat], np.ndarray]
    describe: Callable[[np.ndarray, MaskFormat], str]


MASK_ENCODINGS = {
    # generic: 0/1, 0/255, 16-bit or lossy grey (thresholded), colour with a class map
    "binary": MaskEncoding(generic_mask, lambda raw, fmt: (f"class map ({describe_mask(raw)})" if fmt.class_map
                                                          else describe_mask(raw))),
    # part or instance labels (EndoVis 2017 parts 10/20/30/..., ROBUST-MIS instance ids): > 0
    "nonzero": MaskEncoding(lambda raw, path, fmt: _channel0(raw) > 0,
                            lambda raw, fmt: f"part/instance labels {_values(raw)}: instrument where > 0"),
    # Kvasir-Instrument: instrument where channel 0 is 255 (> 127 tolerates resampling noise)
    "kvasir": MaskEncoding(lambda raw, path, fmt: _channel0(raw) > 127,
                           lambda raw, fmt: "Kvasir masks: instrument where channel 0 > 127"),
    # CholecSeg8k watershed masks: grey 31 = grasper, 32 = L-hook (RGB or RGBA, channel 0 read)
    "cholecseg8k": MaskEncoding(lambda raw, path, fmt: np.isin(_channel0(raw), CHOLECSEG8K_INSTRUMENT),
                                lambda raw, fmt: "watershed classes: instrument = 31 (grasper), 32 (L-hook)"),
}


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
    """The binary instrument mask of ``sample`` (after its crop), checked against ``shape``."""
    if sample.problem:
        raise EndopatError(sample.problem)
    decode = MASK_ENCODINGS[sample.encoding].decode
    mask = np.zeros(shape, dtype=bool)
    for path in sample.masks:
        with reading(path, "mask"):
            part = _apply_crop(decode(read_image(path, mode="raw"), path, sample.mask_format), sample.crop, path)
        if part.shape != tuple(shape):
            raise EndopatError(
                f"{path}: mask size {part.shape[1]}x{part.shape[0]} != image size "
                f"{shape[1]}x{shape[0]} of {sample.image}"
            )
        mask |= part
    return mask


def load_pairs(samples: list[Sample], size: tuple[int, int], skip_bad: bool = False,
               log=print, fit: Fit = "letterbox") -> tuple[np.ndarray, np.ndarray]:
    """Read samples at ``size`` (H, W): images ``(N, H, W, 3)`` uint8, masks ``(N, H, W)`` bool,
    each pair placed by the same ``fit`` rule (:mod:`endopat.data.geometry`).

    A bad sample (unreadable file, mask of another size, non-binary mask) is an error naming the
    file; with ``skip_bad`` it is logged, left out, and the skips are counted at the end.
    """
    if not samples:
        raise EndopatError("no labeled samples to load")
    images = np.empty((len(samples), *size, 3), dtype=np.uint8)
    masks = np.empty((len(samples), *size), dtype=bool)
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
