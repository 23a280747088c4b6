"""Import files for annotation tools: CVAT (CVAT for images 1.1) and Label Studio (tasks JSON),
with masks as pre-annotations.

* **CVAT**: ``cvat/images.txt`` (the images to upload into a task, one path per line, relative to
  the suggest folder) and ``cvat/annotations.xml`` in CVAT for images 1.1 (``<annotations>``,
  ``<meta><task>`` with the label ``instrument`` of type mask, one ``<image>`` per frame with its
  ``<mask>``: ``rle`` = run lengths over the mask's bounding box, row by row, starting with
  background, ``left/top/width/height`` the box). Create the task from the images, then *Upload
  annotations* in that format.
* **Label Studio**: ``label_studio/label_config.xml`` (an ``Image`` and ``BrushLabels`` with
  ``instrument``) and ``label_studio/tasks.json``: one task per frame, ``data.image`` served by
  Label Studio's local-files storage (start it with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``
  and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<the suggest folder>``), and the segmenter's mask as
  a prediction in Label Studio's brush RLE (:func:`brush_rle`).

Both are checked against the tools' own parsers in the tests (label-studio-sdk's ``decode_rle``
and ``LabelInterface``; CVAT's XML as Datumaro's CVAT importer reads it, when installed).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from endopat.io import atomic_write_text
from endopat.labels import BINARY, Labels

LABEL = BINARY.names[1]  # a binary model's one class: "instrument"
COLOUR = BINARY.hex_colour(1)
LOCAL_FILES = "/data/local-files/?d="


# ------------------------------------------------------------------------------------ Label Studio

def brush_rle(mask: np.ndarray) -> list[int]:
    """A boolean ``(H, W)`` mask in Label Studio's brush RLE: the RGBA image (alpha 255 where the
    mask is set, 0 elsewhere, every channel alike) flattened, as bit-packed runs (header: 32-bit
    length, 5-bit word size - 1, four 4-bit run-size classes - 1; then per run: 1, a 2-bit size
    class, length - 1, the 8-bit value)."""
    flat = np.repeat(mask.astype(np.uint8).ravel() * 255, 4)
    sizes = (3, 4, 8, 16)
    bits = [f"{len(flat):032b}", f"{8 - 1:05b}", *(f"{s - 1:04b}" for s in sizes)]
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(flat)]]))
    for start, length in zip(starts, lengths):
        value = int(flat[start])
        while length > 0:
            run = min(int(length), 1 << 16)
            k = next(k for k, s in enumerate(sizes) if run <= 1 << s)
            bits.append(f"1{k:02b}{run - 1:0{sizes[k]}b}{value:08b}")
            length -= run
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]


def label_studio_config(labels: Labels = BINARY) -> str:
    """A labeling config: the image and one brush label per foreground class, in its colour."""
    items = "".join(f'    <Label value="{labels.names[i]}" background="{labels.hex_colour(i)}"/>\n'
                    for i in labels.foreground)
    return f"""<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
{items}  </BrushLabels>
</View>
"""


LABEL_STUDIO_CONFIG = label_studio_config()


def brush_results(mask: np.ndarray, hw: tuple[int, int], labels: Labels = BINARY, prefix: str = "endopat") -> list[dict]:
    """Label Studio brush results of a class-id (or boolean) mask: one region per class present."""
    h, w = hw
    return [{"id": f"{prefix}-{i}", "from_name": "tag", "to_name": "image", "type": "brushlabels",
             "original_width": int(w), "original_height": int(h), "image_rotation": 0,
             "value": {"format": "rle", "rle": brush_rle(mask == i), "brushlabels": [labels.names[i]]}}
            for i in labels.foreground if labels.is_binary or (mask == i).any()]


def label_studio_tasks(files: Sequence[tuple[str, tuple[int, int]]], masks: Sequence[np.ndarray] | None = None,
                       model_version: str | None = None, labels: Labels = BINARY) -> list[dict]:
    tasks = []
    for k, (file, hw) in enumerate(files):
        task: dict = {"data": {"image": LOCAL_FILES + file}}
        if masks is not None:
            results = brush_results(masks[k], hw, labels, f"endopat-{k}")
            if labels.is_binary:
                results[0]["id"] = f"endopat-{k}"
            task["predictions"] = [{"model_version": model_version or "endopat", "result": results}]
        tasks.append(task)
    return tasks


def write_label_studio(folder: Path, files: Sequence[tuple[str, tuple[int, int]]],
                       masks: Sequence[np.ndarray] | None = None, model_version: str | None = None,
                       labels: Labels = BINARY) -> Path:
    atomic_write_text(folder / "label_config.xml", label_studio_config(labels))
    atomic_write_text(folder / "tasks.json", json.dumps(label_studio_tasks(files, masks, model_version, labels)))
    return folder / "tasks.json"


# -------------------------------------------------------------------------------------------- CVAT

def cvat_mask_rle(mask: np.ndarray) -> tuple[list[int], tuple[int, int, int, int]]:
    """(run lengths over the mask's bounding box, row-major, starting with background;
    (left, top, width, height)) as CVAT writes a mask shape."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, left = int(rows[0]), int(cols[0])
    box = mask[top : rows[-1] + 1, left : cols[-1] + 1].ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(box)) + 1
    runs = np.diff(np.concatenate([[0], edges, [len(box)]])).tolist()
    if box[0]:  # CVAT's runs start with background
        runs = [0] + runs
    return runs, (left, top, int(cols[-1] - left + 1), int(rows[-1] - top + 1))


def cvat_xml(files: Sequence[tuple[str, tuple[int, int]]], masks: Sequence[np.ndarray] | None = None,
             labels: Labels = BINARY) -> str:
    """CVAT for images 1.1: one mask label per foreground class, one ``<mask>`` per class present."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    for tag, text in (("id", "0"), ("name", "endopat suggest"), ("size", str(len(files))), ("mode", "annotation")):
        ET.SubElement(task, tag).text = text
    label_list = ET.SubElement(task, "labels")
    for i in labels.foreground:
        label = ET.SubElement(label_list, "label")
        ET.SubElement(label, "name").text = labels.names[i]
        ET.SubElement(label, "color").text = labels.hex_colour(i)
        ET.SubElement(label, "type").text = "mask"
        ET.SubElement(label, "attributes")
    for k, (file, (h, w)) in enumerate(files):
        image = ET.SubElement(root, "image", id=str(k), name=file, width=str(w), height=str(h))
        for i in labels.foreground if masks is not None else ():
            region = masks[k] == i
            if not region.any():
                continue
            runs, (left, top, bw, bh) = cvat_mask_rle(region)
            ET.SubElement(image, "mask", label=labels.names[i], source="auto", occluded="0",
                          rle=", ".join(map(str, runs)), left=str(left), top=str(top), width=str(bw), height=str(bh),
                          z_order="0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_cvat(folder: Path, files: Sequence[tuple[str, tuple[int, int]]],
               masks: Sequence[np.ndarray] | None = None, labels: Labels = BINARY) -> Path:
    atomic_write_text(folder / "images.txt", "".join(f"{f}\n" for f, _ in files))
    atomic_write_text(folder / "annotations.xml", cvat_xml(files, masks, labels))
    return folder / "annotations.xml"
