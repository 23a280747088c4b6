"""MICCAI 2017 EndoVis robotic instrument segmentation, in the challenge's own layout::

    instrument_dataset_N/left_frames/frameNNN.png
    instrument_dataset_N/ground_truth/<Instrument>_labels/frameNNN.png   (grey part labels)

The binary mask (layout ``endovis17``) is the union of every ``*_labels`` folder except
``Other_labels``, > 0. Layout ``endovis17-parts``: the challenge's part classes (10 shaft, 20 wrist,
30 claspers; other non-zero values ignored). Layout ``endovis17-types``: the instrument type of each
``*_labels`` folder, from its name (:data:`TYPES`; ``Other_labels``, the ultrasound probe, is
``other``), where its mask is non-zero. A frame with no label file in any folder shows no instrument. The group is the ``instrument_dataset_N`` folder
(one sequence). ``crop=True`` cuts the 1920x1080 frames to the 1280x1024 area at (28, 320) that
holds the picture (the challenge's own crop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from endopat.data.labeled import Sample
from endopat.data.masks import ENDOVIS17_PARTS, MASK_ENCODINGS, MaskEncoding
from endopat.errors import EndopatError
from endopat.io import list_images
from endopat.labels import BINARY, Labels

NAME = "endovis17"
CROP = (28, 320, 1024, 1280)  # top, left, height, width
EXCLUDED = {"Other_labels"}
# the 2017 challenge's instrument types (its type task), found by a word of the label folder's name
# (e.g. Left_Prograsp_Forceps_labels, Maryland_Bipolar_Forceps_labels, Large_Needle_Driver_Right_labels)
TYPES = (("bipolar", "bipolar_forceps"), ("prograsp", "prograsp_forceps"), ("needle", "large_needle_driver"),
         ("sealer", "vessel_sealer"), ("retractor", "grasping_retractor"), ("scissors", "monopolar_curved_scissors"),
         ("other", "other"))
TYPE_LABELS = Labels(("background", *(name for _, name in TYPES)))


def type_of(folder: str) -> int:
    """The type class of a ``*_labels`` folder, or an error naming it."""
    words = folder.lower()
    for word, name in TYPES:
        if word in words:
            return TYPE_LABELS.id_of(name)
    raise EndopatError(f"{folder}: no instrument type in this label folder's name (layout endovis17-types knows: "
                       f"{', '.join(w for w, _ in TYPES)})")


def _types(raw: np.ndarray, path, sample) -> np.ndarray:
    grey = raw[..., 0] if raw.ndim == 3 else raw
    return np.where(grey > 0, type_of(path.parent.name), 0).astype(np.uint8)


MASK_ENCODINGS["endovis17-types"] = MaskEncoding(
    _types, lambda raw, s: "instrument labels: the type of the folder where > 0", TYPE_LABELS)
CLASSES = {"binary": ("nonzero", BINARY, EXCLUDED), "parts": ("endovis17-parts", ENDOVIS17_PARTS.labels, EXCLUDED),
           "types": ("endovis17-types", TYPE_LABELS, set())}


def _datasets(root: Path) -> list[Path]:
    if (root / "left_frames").is_dir():
        return [root]
    return sorted(p for p in root.glob("instrument_dataset_*") if (p / "left_frames").is_dir())


def detect(root: Path) -> bool:
    return bool(_datasets(root))


def read(root: Path, crop: bool = False, classes: str = "binary") -> list[Sample]:
    """``classes``: ``binary`` (instrument), ``parts`` or ``types``."""
    encoding, labels, excluded = CLASSES[classes]
    datasets = _datasets(root)
    if not datasets:
        raise EndopatError(f"{root}: no instrument_dataset_*/left_frames folders (EndoVis 2017 layout)")
    samples = []
    for ds in datasets:
        gt = ds / "ground_truth"
        if not gt.is_dir():
            raise EndopatError(f"{gt}: folder not found (labels of {ds.name})")
        label_dirs = sorted(d for d in gt.iterdir() if d.is_dir() and d.name.endswith("_labels")
                            and d.name not in excluded)
        frames = list_images(ds / "left_frames")
        if not frames:
            raise EndopatError(f"{ds / 'left_frames'}: no images found")
        for frame in frames:
            masks = tuple(m for d in label_dirs for m in [d / frame.name] if m.is_file())
            samples.append(Sample(frame, masks, ds.name, f"{ds.name}/{frame.stem}", encoding,
                                  CROP if crop else None, labels=labels))
    return samples
