"""Label Studio's JSON export: a list of tasks, each with its ``annotations``.

Counted as instrument: ``brushlabels`` (Label Studio's brush RLE of an RGBA image, decoded with
label-studio-sdk's own ``decode_rle``; the alpha channel is the mask) and ``polygonlabels``
(points in percent of the image's width and height, filled as COCO's tools fill polygons) of the
chosen labels. Cancelled annotations (a skipped task) are left out, and so is a task left without
one. Several annotators on one task: the latest annotation (by ``updated_at``, then
``created_at``) counts, or the named annotator's (``annotator``: an e-mail or a user id).
"""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from endopat.annotation.export import (
    Annotated,
    ExportFiles,
    Parsed,
    choose_labels,
    export_size,
    paint,
    json_export,
    polygon_mask,
)
from endopat.errors import EndopatError

NAME = "label-studio"
TOOL = "Label Studio JSON"
KINDS = {"brushlabels": "brushlabels", "polygonlabels": "polygonlabels"}
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes an uploaded file's name with this


def detect(files: ExportFiles) -> bool:
    found = json_export(files, "[")
    return found is not None and isinstance(found[1], list) and all(isinstance(t, dict) and "data" in t
                                                                    for t in found[1][:5])


def image_name(task: dict) -> str:
    """The file a task shows: ``data.image`` (or its first string) without Label Studio's URL parts;
    "" when its data holds none."""
    data = task.get("data")
    if not isinstance(data, dict):
        return ""
    value = data.get("image")
    if not isinstance(value, str) or not value:
        value = next((v for v in data.values() if isinstance(v, str)), "")
    url = urlparse(value)
    if "d" in parse_qs(url.query):  # local files: /data/local-files/?d=frames/a.png
        return unquote(parse_qs(url.query)["d"][0])
    return unquote(url.path).rsplit("/", 1)[-1]


def _who(annotation: dict) -> list[str]:
    c = annotation.get("completed_by")
    if isinstance(c, dict):
        return [str(c.get("id")), str(c.get("email", ""))]
    return [str(c)]


def _chosen(task: dict, annotator: str | None) -> tuple[dict | None, str]:
    live = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
    if annotator:
        live = [a for a in live if annotator in _who(a)]
    if not live:
        cancelled = any(a.get("was_cancelled") for a in task.get("annotations", []))
        return None, "skipped tasks (annotation cancelled)" if cancelled else (
            f"tasks without an annotation by '{annotator}'" if annotator else "tasks without an annotation")
    return max(live, key=lambda a: (a.get("updated_at") or "", a.get("created_at") or "", a.get("id") or 0)), ""


def _brush(value: dict, size: tuple[int, int], here: str) -> np.ndarray:
    try:
        from label_studio_sdk.converter.brush import (
            decode_rle,  # optional (the annotation extra)
        )
    except ImportError:
        raise EndopatError("reading Label Studio brush masks needs label-studio-sdk: pip install "
                           "'endopat[annotation]'") from None
    h, w = size
    try:
        n = int.from_bytes(bytes(value["rle"][:4]), "big")  # its header: how many values it holds
        flat = np.asarray(decode_rle(value["rle"])) if n == h * w * 4 else None  # not decoded when wrong
    except Exception as err:  # the SDK raises whatever its bit reader meets  # noqa: BLE001
        raise EndopatError(f"{here}: brush RLE not readable ({err.__class__.__name__}: {err})") from None
    if flat is None:  # (decoded, it holds what its header says)
        raise EndopatError(f"{here}: brush RLE holds {n} values, a {w}x{h} RGBA image needs {h * w * 4}")
    return flat.reshape(h, w, 4)[..., 3] > 0


def read(files: ExportFiles, labels: list[str] | None = None, annotator: str | None = None) -> Parsed:
    found = json_export(files, "[")
    if found is None:
        raise EndopatError(f"{files.path}: no readable Label Studio JSON export (a file opening with [)")
    name, tasks = found
    where = files.where(name)
    picked, left_out = [], Counter()
    for task in tasks:
        annotation, why = _chosen(task, annotator)
        if annotation is None:
            left_out[why] += 1
        else:
            picked.append((task, annotation))
    defined = sorted({label for _, a in picked for r in a.get("result", []) if r.get("type") in KINDS
                      for label in r.get("value", {}).get(KINDS[r["type"]], [])})
    chosen = choose_labels(defined, labels, where)
    frames, seen = [], set()
    for task, annotation in picked:
        file = image_name(task)
        here = f"{where}: task {task.get('id')} ('{file}')"
        if file in seen:
            raise EndopatError(f"{where}: two tasks show an image named '{file}'")
        seen.add(file)
        size, mask, found = None, None, []
        for r in annotation.get("result", []):
            if r.get("type") not in KINDS:
                left_out[f"{r.get('type')} results"] += 1
                continue
            names = r["value"].get(KINDS[r["type"]], [])
            if not set(names) & chosen.keys():
                left_out[f"results labelled {', '.join(names)}"] += 1
                continue
            size = export_size(r.get("original_height"), r.get("original_width"), here)
            mask = np.zeros(size, np.uint8) if mask is None else mask
            class_id = chosen[next(n for n in names if n in chosen)]
            if mask.shape != size:
                raise EndopatError(f"{here}: results of two image sizes")
            if r["type"] == "brushlabels":
                paint(mask, _brush(r["value"], size, here), class_id)
            else:
                h, w = size
                points = [(x * w / 100, y * h / 100) for x, y in r["value"].get("points", [])]
                paint(mask, polygon_mask(points, size, here), class_id)
            found += [n for n in names if n in chosen]
        who = _who(annotation)
        frames.append(Annotated(file, size, mask, labels=sorted(set(found)), annotator=who[-1] or who[0],
                                where=here))
    if not frames and not left_out:
        raise EndopatError(f"{where}: no tasks in the export")
    return Parsed(TOOL, frames, defined, left_out)
