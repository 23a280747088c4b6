"""Generic layout: ``images/<stem>.<ext>`` + ``masks/<stem>.<ext>``, masks 0/255 or 0/1.

With a ``classes.txt`` beside ``images/`` and ``masks/`` (or beside the ``train/``, ``val/``,
``test/`` folders), one ``ID NAME`` line per class as Endoscapes-Seg50 ships it, the masks are class
ids and the target is multi-class (:meth:`endopat.labels.Labels.read`).

The group (video) of a frame is its stem without the trailing frame index
(``vid03_f012`` -> ``vid03``), so frames of one video stay on one side of a split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from endopat.data.labeled import Sample, group_of
from endopat.errors import EndopatError
from endopat.io import list_images
from endopat.labels import BINARY, CLASSES_FILE, Labels

NAME = "generic"


def detect(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def classes_file(root: Path) -> Path | None:
    """The ``classes.txt`` that names ``root``'s class ids: beside its folders, or beside the split
    folder it is."""
    for folder in (root, root.parent) if root.name in ("train", "val", "test") else (root,):
        if (folder / CLASSES_FILE).is_file():
            return folder / CLASSES_FILE
    return None


def pair_by_stem(root: Path, encoding: str, group: Callable[[str], str] = group_of,
                 split: Callable[[str], str | None] = lambda stem: None, labels: Labels = BINARY) -> list[Sample]:
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
                              split=split(img.stem), problem=problem, labels=labels))
    return samples


def read(root: Path) -> list[Sample]:
    names = classes_file(root)
    if names is None:
        return pair_by_stem(root, "binary")
    return pair_by_stem(root, "ids", labels=Labels.read(names))
