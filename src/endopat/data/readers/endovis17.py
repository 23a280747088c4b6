"""MICCAI 2017 EndoVis robotic instrument segmentation, in the challenge's own layout::

    instrument_dataset_N/left_frames/frameNNN.png
    instrument_dataset_N/ground_truth/<Instrument>_labels/frameNNN.png   (grey part labels)

The binary mask is the union of every ``*_labels`` folder except ``Other_labels``, > 0. A frame with
no label file in any folder shows no instrument. The group is the ``instrument_dataset_N`` folder
(one sequence). ``crop=True`` cuts the 1920x1080 frames to the 1280x1024 area at (28, 320) that
holds the picture (the challenge's own crop).
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.labeled import Sample
from endopat.errors import EndopatError
from endopat.io import list_images

NAME = "endovis17"
CROP = (28, 320, 1024, 1280)  # top, left, height, width
EXCLUDED = {"Other_labels"}


def _datasets(root: Path) -> list[Path]:
    if (root / "left_frames").is_dir():
        return [root]
    return sorted(p for p in root.glob("instrument_dataset_*") if (p / "left_frames").is_dir())


def detect(root: Path) -> bool:
    return bool(_datasets(root))


def read(root: Path, crop: bool = False) -> list[Sample]:
    datasets = _datasets(root)
    if not datasets:
        raise EndopatError(f"{root}: no instrument_dataset_*/left_frames folders (EndoVis 2017 layout)")
    samples = []
    for ds in datasets:
        gt = ds / "ground_truth"
        if not gt.is_dir():
            raise EndopatError(f"{gt}: folder not found (labels of {ds.name})")
        label_dirs = sorted(d for d in gt.iterdir() if d.is_dir() and d.name.endswith("_labels")
                            and d.name not in EXCLUDED)
        frames = list_images(ds / "left_frames")
        if not frames:
            raise EndopatError(f"{ds / 'left_frames'}: no images found")
        for frame in frames:
            masks = tuple(m for d in label_dirs for m in [d / frame.name] if m.is_file())
            samples.append(Sample(frame, masks, ds.name, f"{ds.name}/{frame.stem}", "nonzero",
                                  CROP if crop else None))
    return samples
