"""CholecSeg8k layout::

    videoNN/videoNN_NNNNN/frame_N_endo.png                    the frame
    videoNN/videoNN_NNNNN/frame_N_endo_watershed_mask.png     grey class values (RGB or RGBA)

Layout ``cholecseg8k``: instrument = watershed values 31 (grasper) and 32 (L-hook).
``cholecseg8k-13``: the 13 documented classes; ``cholecseg8k-8``: EndoViT's 8-class merge (which
value maps where: :data:`endopat.data.labeled.CHOLECSEG8K_13` and ``CHOLECSEG8K_8``; the masks' extra
values 0 and 255 are ignored). The group is ``videoNN``.
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.labeled import Sample
from endopat.data.masks import CHOLECSEG8K_8, CHOLECSEG8K_13
from endopat.labels import BINARY
from endopat.errors import EndopatError

NAME = "cholecseg8k"
SUFFIX = "_endo.png"
MASK_SUFFIX = "_endo_watershed_mask.png"


def detect(root: Path) -> bool:
    return next(root.glob("video*/video*/frame_*" + SUFFIX), None) is not None


CLASSES = {"binary": ("cholecseg8k", BINARY), "13": ("cholecseg8k-13", CHOLECSEG8K_13.labels),
           "8": ("cholecseg8k-8", CHOLECSEG8K_8.labels)}


def read(root: Path, classes: str = "binary") -> list[Sample]:
    """``classes``: ``binary`` (instrument), ``13`` or ``8``."""
    encoding, labels = CLASSES[classes]
    frames = sorted(root.glob("video*/video*/frame_*" + SUFFIX))
    if not frames:
        raise EndopatError(f"{root}: no videoNN/videoNN_*/frame_*_endo.png found (CholecSeg8k layout)")
    samples = []
    for f in frames:
        mask = f.with_name(f.name[: -len(SUFFIX)] + MASK_SUFFIX)
        problem = None if mask.is_file() else f"{f}: no watershed mask {mask.name} beside it"
        video = f.parent.parent.name
        samples.append(Sample(f, () if problem else (mask,), video, f"{f.parent.name}/{f.stem}",
                              encoding, problem=problem, labels=labels))
    return samples
