"""ROBUST-MIS 2019 (HeiCo) layout::

    <procedure>/<case>/<frame>/raw.png                      the frame
    <procedure>/<case>/<frame>/instrument_instances.png     0 = background, > 0 = instance id

A frame folder without ``instrument_instances.png`` is a labeled frame without any instrument. The
group is ``<procedure>/<case>`` (one surgery video).
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.labeled import Sample
from endopat.errors import EndopatError

NAME = "robustmis19"
MASK = "instrument_instances.png"


def _frames(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/*/raw.png"))


def detect(root: Path) -> bool:
    return next(root.glob("*/*/*/raw.png"), None) is not None


def read(root: Path) -> list[Sample]:
    frames = _frames(root)
    if not frames:
        raise EndopatError(f"{root}: no <procedure>/<case>/<frame>/raw.png found (ROBUST-MIS layout)")
    samples = []
    for f in frames:
        procedure, case = f.parent.parent.name, f.parent.name
        mask = f / MASK
        samples.append(Sample(f / "raw.png", (mask,) if mask.is_file() else (),
                              f"{procedure}/{case}", f"{procedure}/{case}/{f.name}", "nonzero"))
    return samples
