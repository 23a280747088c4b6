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
from endopat.io import list_images, read_image

SPLITS = ("train", "val", "test")
_TRAILING_INDEX = re.compile(r"^(.*?)[_\-. ]*(?:f|frame)?\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path | None  # None: a labeled frame that shows no instrument
    group: str
    id: str


def group_of(stem: str) -> str:
    """The video a frame belongs to, from its stem: ``vid03_f012`` -> ``vid03``."""
    m = _TRAILING_INDEX.match(stem)
    return m.group(1) if m and m.group(1) else stem


def read_generic(root: str | Path) -> list[Sample]:
    """``root/images/<stem>.<ext>`` + ``root/masks/<stem>.png`` (masks 0/255 or 0/1)."""
    root = Path(root)
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise EndopatError(f"{d}: folder not found (expected images/ and masks/ under {root})")
    masks = {p.stem: p for p in list_images(mask_dir)}
    images = list_images(img_dir)
    if not images:
        raise EndopatError(f"{img_dir}: no images found")
    samples = []
    for img in images:
        mask = masks.get(img.stem)
        if mask is None:
            raise EndopatError(f"{img}: no mask with the same stem in {mask_dir}")
        samples.append(Sample(img, mask, group_of(img.stem), img.stem))
    return samples


def open_labeled(src: str | Path) -> dict[str, list[Sample]]:
    """Samples of a labeled source, by split when the source has ``train/``, ``val/``, ``test/``.

    A source without split folders is returned whole under ``"all"``.
    """
    src = Path(src)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if not src.is_dir():
        raise EndopatError(f"{src}: not a folder")
    present = [s for s in SPLITS if (src / s).is_dir()]
    if present:
        return {s: read_generic(src / s) for s in present}
    return {"all": read_generic(src)}


def binary_mask(raw: np.ndarray, path: Path) -> np.ndarray:
    """0/255 or 0/1 (grey or RGB with equal channels) -> bool; anything else is an error."""
    if raw.ndim == 3:
        raw = raw[..., 0]
    values = np.unique(raw)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(map(str, values[:8])) + (" ..." if len(values) > 8 else "")
        raise EndopatError(f"{path}: mask is not binary (values {shown}; expected 0/255 or 0/1)")
    return raw > 0


def load_mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    if sample.mask is None:
        return np.zeros(shape, dtype=bool)
    mask = binary_mask(read_image(sample.mask, mode="raw"), sample.mask)
    if mask.shape != shape:
        raise EndopatError(
            f"{sample.mask}: mask size {mask.shape[1]}x{mask.shape[0]} != image size "
            f"{shape[1]}x{shape[0]} of {sample.image}"
        )
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


def load_pairs(samples: list[Sample], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Read samples at ``size`` (H, W): images ``(N, H, W, 3)`` uint8, masks ``(N, H, W)`` bool."""
    if not samples:
        raise EndopatError("no labeled samples to load")
    images = np.empty((len(samples), *size, 3), dtype=np.uint8)
    masks = np.empty((len(samples), *size), dtype=bool)
    for i, s in enumerate(samples):
        img = read_image(s.image)
        mask = load_mask(s, img.shape[:2])
        images[i] = resize_rgb(img, size)
        masks[i] = resize_mask(mask, size)
    return images, masks
