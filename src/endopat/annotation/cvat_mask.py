"""CVAT "Segmentation mask 1.1" (the PASCAL VOC layout): ``labelmap.txt`` (``label:R,G,B:parts:actions``)
and ``SegmentationClass/<image stem>.png``, each pixel coloured by its class.

Instrument: the pixels whose colour is a chosen label's; a colour that ``labelmap.txt`` does not
name is an error. Images are matched by stem (the export keeps no extension).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from endopat.annotation.export import Annotated, ExportFiles, Parsed, choose_labels
from endopat.errors import EndopatError

NAME = "cvat-mask"
TOOL = "CVAT Segmentation mask 1.1"


def _labelmap(files: ExportFiles) -> str | None:
    return next((n for n in files.names() if Path(n).name == "labelmap.txt"), None)


def detect(files: ExportFiles) -> bool:
    return _labelmap(files) is not None and any("SegmentationClass/" in n for n in files.names())


def read(files: ExportFiles, labels: list[str] | None = None, annotator: str | None = None) -> Parsed:
    name = _labelmap(files)
    where = files.where(name)
    colours: dict[tuple[int, int, int], str] = {}
    for k, line in enumerate(files.read(name).decode("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        try:
            rgb = tuple(int(v) for v in parts[1].split(","))
            assert len(rgb) == 3
        except (IndexError, ValueError, AssertionError):
            raise EndopatError(f"{where}: line {k} '{line}' is not label:R,G,B:parts:actions") from None
        colours[rgb] = parts[0]
    defined = [n for n in colours.values() if n != "background"]
    chosen = choose_labels(defined, labels, where)
    frames = []
    for member in sorted(n for n in files.find(".png") if "SegmentationClass/" in n):
        here = files.where(member)
        with Image.open(io.BytesIO(files.read(member))) as im:
            rgb = np.asarray(im.convert("RGB")).astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        known = {(r << 16) | (g << 8) | b: label for (r, g, b), label in colours.items()}
        unknown = np.setdiff1d(np.unique(code), list(known))
        if unknown.size:
            c = int(unknown[0])
            raise EndopatError(f"{here}: colour ({c >> 16},{(c >> 8) & 255},{c & 255}) is not in {Path(name).name}")
        mask = np.zeros(code.shape, np.uint8)
        for v, label in known.items():
            if label in chosen:
                mask[code == v] = chosen[label]
        hits = [v for v, label in known.items() if label in chosen]
        found = sorted({known[v] for v in np.unique(code[np.isin(code, hits)]).tolist()})
        frames.append(Annotated(Path(member).stem, mask.shape, mask, labels=found, annotator=annotator or "",
                                where=here))
    if not frames:
        raise EndopatError(f"{where}: no SegmentationClass/*.png beside it")
    return Parsed(TOOL, frames, defined, Counter())
