"""CholecSeg8k layout::

    videoNN/videoNN_NNNNN/frame_N_endo.png                    the frame
    videoNN/videoNN_NNNNN/frame_N_endo_watershed_mask.png     grey class values (RGB or RGBA)

Instrument = watershed values 31 (grasper) and 32 (L-hook). The group is ``videoNN``.
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.labeled import Sample
from endopat.errors import EndopatError

NAME = "cholecseg8k"
SUFFIX = "_endo.png"
MASK_SUFFIX = "_endo_watershed_mask.png"


def detect(root: Path) -> bool:
    return next(root.glob("video*/video*/frame_*" + SUFFIX), None) is not None


def read(root: Path) -> list[Sample]:
    frames = sorted(root.glob("video*/video*/frame_*" + SUFFIX))
    if not frames:
        raise EndopatError(f"{root}: no videoNN/videoNN_*/frame_*_endo.png found (CholecSeg8k layout)")
    samples = []
    for f in frames:
        mask = f.with_name(f.name[: -len(SUFFIX)] + MASK_SUFFIX)
        problem = None if mask.is_file() else f"{f}: no watershed mask {mask.name} beside it"
        video = f.parent.parent.name
        samples.append(Sample(f, () if problem else (mask,), video, f"{f.parent.name}/{f.stem}",
                              "cholecseg8k", problem=problem))
    return samples
