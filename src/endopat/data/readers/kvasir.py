"""Kvasir-Instrument layout::

    images/<id>.jpg    masks/<id>.png (instrument where channel 0 is 255)    train.txt / test.txt

``train.txt`` / ``test.txt`` (one id per line), when present, are kept as the dataset's own split.
Kvasir-Instrument publishes no video ids, so every image is its own group.
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.labeled import Sample
from endopat.data.readers.generic import pair_by_stem
from endopat.errors import reading

NAME = "kvasir"
SPLIT_FILES = {"train": "train.txt", "test": "test.txt"}


def detect(root: Path) -> bool:
    return ((root / "images").is_dir() and (root / "masks").is_dir()
            and any((root / f).is_file() for f in SPLIT_FILES.values()))


def read(root: Path) -> list[Sample]:
    split_of: dict[str, str] = {}
    for split, name in SPLIT_FILES.items():
        path = root / name
        if path.is_file():
            with reading(path, "split list (one image id per line)"):
                ids = path.read_text().split()
            for line in ids:
                split_of[Path(line).stem] = split
    return pair_by_stem(root, "kvasir", group=lambda stem: stem, split=split_of.get)
