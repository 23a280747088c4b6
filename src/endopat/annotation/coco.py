"""COCO instances JSON (``images``, ``annotations``, ``categories``): what CVAT, Label Studio and
Roboflow all export. Segmentations are polygons (filled as pycocotools fills them) or RLE
(compressed or not), decoded with pycocotools, COCO's own library; an annotation with a box only
is left out and counted. An image without annotations of a chosen category is an empty mask.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from endopat.annotation.export import (
    Annotated,
    ExportFiles,
    Parsed,
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


def _segmentation(seg, size: tuple[int, int], here: str) -> np.ndarray:
    from pycocotools import mask as mask_utils  # imported when a polygon or RLE is read

    h, w = size
    if isinstance(seg, list):  # polygons
        out = np.zeros(size, bool)
        for poly in seg:
            if len(poly) % 2:
                raise EndopatError(f"{here}: a polygon with an odd number of coordinates")
            out |= polygon_mask(list(zip(poly[0::2], poly[1::2])), size, here)
        return out
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != [h, w]:
            raise EndopatError(f"{here}: RLE of size {seg['size']} on a {h}x{w} image")
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else dict(seg)
        if isinstance(seg["counts"], list) and sum(seg["counts"]) != h * w:
            raise EndopatError(f"{here}: RLE runs add up to {sum(seg['counts'])} pixels, the image has {h * w}")
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode()
        return mask_utils.decode(rle).astype(bool)
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
        here = f"{where}: image '{file}'"
        if file in seen:
            raise EndopatError(f"{where}: two images named '{file}'")
        seen.add(file)
        size = (int(image["height"]), int(image["width"]))
        mask, found = np.zeros(size, np.uint8), []
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
