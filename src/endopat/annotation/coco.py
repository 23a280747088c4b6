"""COCO instances JSON (``images``, ``annotations``, ``categories``): what CVAT, Label Studio and
Roboflow all export. Segmentations are polygons (filled as pycocotools, COCO's own library, fills
them) or RLE (compressed or not: read here, checked before a mask is made, because pycocotools'
decoder writes past its buffer on a malformed string); an annotation with a box only is left out
and counted. An image without annotations of a chosen category is an empty mask.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from endopat.annotation.export import (
    Annotated,
    ExportFiles,
    Parsed,
    blank_image,
    choose_labels,
    paint,
    json_export,
    polygon_mask,
)
from endopat.errors import EndopatError

NAME = "coco"
TOOL = "COCO instances"


def _export(files: ExportFiles):
    return json_export(files, "{", '"images"')


def detect(files: ExportFiles) -> bool:
    found = _export(files)
    return found is not None and isinstance(found[1], dict) and {"images", "annotations", "categories"} <= set(found[1])


def rle_counts(counts, where: str) -> list[int]:
    """COCO's run lengths from its list or its compressed string (pycocotools' ``rleFrString``: 5-bit
    groups offset by 48, 0x20 continues, 0x10 signs the last group; from the fourth run on, each is
    a difference from the run two before)."""
    if isinstance(counts, list):
        return counts
    data = counts.encode() if isinstance(counts, str) else counts
    if not isinstance(data, bytes):
        raise EndopatError(f"{where}: RLE counts are neither a list nor a string")
    out, p = [], 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p == len(data):
                raise EndopatError(f"{where}: compressed RLE counts end inside a number")
            c = data[p] - 48
            x |= (c & 0x1F) << 5 * k
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        out.append(x + out[-2] if len(out) > 2 else x)
    return out


def rle_mask(counts: list[int], size: tuple[int, int], where: str) -> np.ndarray:
    """Run lengths (background first) over the image in column-major order, as COCO writes them."""
    h, w = size
    try:
        runs = np.asarray(counts, dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        runs = np.full(2, -1)  # not run lengths: said below
    if runs.ndim != 1 or (runs < 0).any() or (runs > h * w).any() or runs.sum() != h * w:
        raise EndopatError(f"{where}: RLE runs are not {h * w} pixels of a {h}x{w} image")
    return np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(w, h).T


def _segmentation(seg, size: tuple[int, int], here: str) -> np.ndarray:
    if isinstance(seg, list):  # polygons
        out = np.zeros(size, bool)
        for poly in seg:
            if len(poly) % 2:
                raise EndopatError(f"{here}: a polygon with an odd number of coordinates")
            out |= polygon_mask(list(zip(poly[0::2], poly[1::2])), size, here)
        return out
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != list(size):
            raise EndopatError(f"{here}: RLE of size {seg['size']} on a {size[0]}x{size[1]} image")
        return rle_mask(rle_counts(seg["counts"], here), size, here)
    raise EndopatError(f"{here}: segmentation is neither polygons nor RLE")


def read(files: ExportFiles, labels: list[str] | None = None, annotator: str | None = None) -> Parsed:
    found = _export(files)
    if found is None:
        raise EndopatError(f"{files.path}: no readable COCO JSON (a file opening with {{\"images\": ...)")
    name, data = found
    where = files.where(name)
    categories = {c["id"]: c["name"] for c in data.get("categories", [])}
    chosen = choose_labels(list(categories.values()), labels, where)
    by_image = defaultdict(list)
    for a in data.get("annotations", []):
        by_image[a.get("image_id")].append(a)
    frames, left_out, seen = [], Counter(), set()
    for image in data.get("images", []):
        file = image.get("file_name")
        here, size, mask = blank_image(where, file, image.get("height"), image.get("width"), seen)
        found = []
        for a in by_image.pop(image["id"], []):
            label = categories.get(a.get("category_id"))
            if label is None:
                raise EndopatError(f"{here}: category {a.get('category_id')} does not exist "
                                   f"(categories: {', '.join(categories.values())})")
            if label not in chosen:
                left_out[f"annotations of category '{label}'"] += 1
                continue
            if not a.get("segmentation"):
                left_out["annotations without segmentation (boxes)"] += 1
                continue
            paint(mask, _segmentation(a["segmentation"], size, f"{here}, annotation {a.get('id')}"), chosen[label])
            found.append(label)
        frames.append(Annotated(file, size, mask, labels=sorted(set(found)), annotator=annotator or "", where=here))
    if by_image:
        raise EndopatError(f"{where}: annotations of image id {next(iter(by_image))}, which is not in 'images'")
    if not frames:
        raise EndopatError(f"{where}: no images in the export")
    return Parsed(TOOL, frames, list(categories.values()), left_out)
