"""Generic layout: ``images/<stem>.<ext>`` + ``masks/<stem>.<ext>``, masks 0/255 or 0/1.

The group (video) of a frame is its stem without the trailing frame index
(``vid03_f012`` -> ``vid03``), so frames of one video stay on one side of a split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from endopat.data.labeled import Sample, group_of
from endopat.errors import EndopatError
from endopat.io import list_images

NAME = "generic"


def detect(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def pair_by_stem(root: Path, encoding: str, group: Callable[[str], str] = group_of,
                 split: Callable[[str], str | None] = lambda stem: None) -> list[Sample]:
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
        problem = None if mask else f"{img}: no mask with the same stem in {mask_dir}"
        samples.append(Sample(img, (mask,) if mask else (), group(img.stem), img.stem, encoding,
                              split=split(img.stem), problem=problem))
    return samples


def read(root: Path) -> list[Sample]:
    return pair_by_stem(root, "binary")
