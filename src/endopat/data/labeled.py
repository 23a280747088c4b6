"""Labeled instrument-segmentation data: samples, the generic images/ + masks/ layout, loading.

A :class:`Sample` is one labeled frame: image path, mask path and its group (the video or procedure
it comes from, which keeps train and test video-disjoint). Readers for the public dataset layouts
return the same samples; :func:`load_pairs` turns samples into tensors at the network's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endopat.errors import EndopatError
from endopat.io import read_image

SPLITS = ("train", "val", "test")
_TRAILING_INDEX = re.compile(r"^(.*?)[_\-. ]*(?:f|frame)?\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One labeled frame.

    ``masks``: the mask files whose union is the instrument mask (EndoVis keeps one file per
    instrument); empty for a labeled frame that shows no instrument. ``encoding`` names how a mask
    file's values map to "instrument" (see :data:`MASK_DECODERS`). ``crop`` is ``(top, left, height,
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


def group_of(stem: str) -> str:
    """The video a frame belongs to, from its stem: ``vid03_f012`` -> ``vid03``."""
    m = _TRAILING_INDEX.match(stem)
    return m.group(1) if m and m.group(1) else stem


def open_labeled(src: str | Path, layout: str | None = None) -> dict[str, list[Sample]]:
    """Samples of a labeled source, by split when the source has ``train/``, ``val/``, ``test/``.

    Each split folder (or the source itself, returned under ``"all"``) is read with the named
    ``layout`` or the one detected (see :mod:`endopat.data.readers`).
    """
    from endopat.data.readers import read_labeled

    src = Path(src)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if not src.is_dir():
        raise EndopatError(f"{src}: not a folder")
    present = [s for s in SPLITS if (src / s).is_dir()]
    if present:
        return {s: read_labeled(src / s, layout) for s in present}
    return {"all": read_labeled(src, layout)}


def binary_mask(raw: np.ndarray, path: Path) -> np.ndarray:
    """0/255 or 0/1 (grey or RGB with equal channels) -> bool; anything else is an error."""
    if raw.ndim == 3:
        raw = raw[..., 0]
    values = np.unique(raw)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(map(str, values[:8])) + (" ..." if len(values) > 8 else "")
        raise EndopatError(f"{path}: mask is not binary (values {shown}; expected 0/255 or 0/1)")
    return raw > 0


def _channel0(raw: np.ndarray) -> np.ndarray:
    return raw[..., 0] if raw.ndim == 3 else raw


MASK_DECODERS = {
    # generic: 0/255 or 0/1, anything else is an error
    "binary": binary_mask,
    # part or instance labels (EndoVis 2017 parts 10/20/30/..., ROBUST-MIS instance ids): > 0
    "nonzero": lambda raw, path: _channel0(raw) > 0,
    # Kvasir-Instrument: instrument where channel 0 is 255 (> 127 tolerates resampling noise)
    "kvasir": lambda raw, path: _channel0(raw) > 127,
    # CholecSeg8k watershed masks: grey 31 = grasper, 32 = L-hook (RGB or RGBA, channel 0 read)
    "cholecseg8k": lambda raw, path: np.isin(_channel0(raw), (31, 32)),
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
    decode = MASK_DECODERS[sample.encoding]
    mask = np.zeros(shape, dtype=bool)
    for path in sample.masks:
        part = _apply_crop(decode(read_image(path, mode="raw"), path), sample.crop, path)
        if part.shape != tuple(shape):
            raise EndopatError(
                f"{path}: mask size {part.shape[1]}x{part.shape[0]} != image size "
                f"{shape[1]}x{shape[0]} of {sample.image}"
            )
        mask |= part
    return mask


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if mask.shape == tuple(size):
        return mask
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(im) > 127


def load_pairs(samples: list[Sample], size: tuple[int, int], skip_bad: bool = False,
               log=print) -> tuple[np.ndarray, np.ndarray]:
    """Read samples at ``size`` (H, W): images ``(N, H, W, 3)`` uint8, masks ``(N, H, W)`` bool.

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
        images[n] = resize_rgb(img, size)
        masks[n] = resize_mask(mask, size)
        n += 1
    if skipped:
        log(f"skipped {skipped} bad sample(s) of {len(samples)}")
    if n == 0:
        raise EndopatError("no readable labeled samples")
    return images[:n], masks[:n]
