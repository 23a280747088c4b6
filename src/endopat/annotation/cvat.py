"""CVAT for images 1.1 (XML): ``<image name width height>`` elements with their shapes.

Counted as instrument: polygons (filled as COCO's tools fill them, :func:`polygon_mask`) and masks
(``rle`` = run lengths over the box ``left top width height``, background first) of the chosen
labels, merged per image; an image without such shapes is an empty mask. Left out and counted:
boxes, polylines, points, ellipses, skeletons and tags, and shapes of other labels.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from endopat.annotation.export import (
    Annotated,
    ExportFiles,
    Parsed,
    blank_image,
    choose_labels,
    paint,
    polygon_mask,
    runs_mask,
)
from endopat.errors import EndopatError

NAME = "cvat"
TOOL = "CVAT for images 1.1"
AREAS = ("polygon", "mask")  # the shapes that cover pixels


def _xml(files: ExportFiles) -> str | None:
    names = files.find(".xml")
    return next((n for n in names if n.endswith("annotations.xml")), names[0] if names else None)


def detect(files: ExportFiles) -> bool:
    name = _xml(files)
    if name is None:
        return False
    head = files.read(name)[:2000].decode("utf-8", "replace")
    return "<annotations" in head


def read(files: ExportFiles, labels: list[str] | None = None, annotator: str | None = None) -> Parsed:
    name = _xml(files)
    where = files.where(name)
    try:
        root = ET.fromstring(files.read(name))
    except ET.ParseError as err:
        raise EndopatError(f"{where}: not readable XML ({err})") from None
    if root.tag != "annotations":
        raise EndopatError(f"{where}: not a CVAT for images export (root <{root.tag}>)")
    defined = list(dict.fromkeys(n.text for n in root.findall(".//labels/label/name") if n.text))
    if not defined:  # an export without its task's meta: the labels its shapes use
        defined = sorted({s.get("label") for i in root.findall("image") for s in i if s.get("label")})
    chosen = choose_labels(defined, labels, where)
    task = root.findtext("meta/task/name")
    who = root.findtext("meta/task/assignee/username") or root.findtext("meta/task/owner/username") or ""
    if annotator and who and annotator != who:
        raise EndopatError(f"{where}: annotated by '{who}', not '{annotator}' (a CVAT export holds one annotator)")
    frames, left_out, seen = [], Counter(), set()
    for image in root.findall("image"):
        file = image.get("name")
        here, size, mask = blank_image(where, file, image.get("height"), image.get("width"), seen)
        found = []
        for shape in image:
            label = shape.get("label")
            if shape.tag not in AREAS:
                left_out[f"{shape.tag}s"] += 1
                continue
            if label not in defined:
                raise EndopatError(f"{here}: label '{label}' does not exist (labels: {', '.join(defined)})")
            if label not in chosen:
                left_out[f"shapes of label '{label}'"] += 1
                continue
            if shape.tag == "polygon":
                try:
                    points = [tuple(float(v) for v in p.split(",")) for p in shape.get("points", "").split(";") if p]
                except ValueError:
                    raise EndopatError(f"{here}: polygon points '{shape.get('points')}' are not x,y;x,y;...") from None
                paint(mask, polygon_mask(points, size, here), chosen[label])
            else:
                try:
                    runs = [int(v) for v in shape.get("rle", "").split(",") if v.strip()]
                    box = tuple(int(float(shape.get(k))) for k in ("left", "top", "width", "height"))
                except (TypeError, ValueError):
                    raise EndopatError(f"{here}: a mask without readable rle, left, top, width, height") from None
                paint(mask, runs_mask(runs, box, size, here), chosen[label])
            found.append(label)
        frames.append(Annotated(file, size, mask, labels=sorted(set(found)), annotator=who, group=task, where=here))
    if not frames:
        raise EndopatError(f"{where}: no <image> in the export")
    return Parsed(TOOL, frames, defined, left_out)
