"""Annotation-tool exports into a labeled folder endopat reads everywhere (the generic layout).

``import_export(EXPORT, images, out)`` reads the export (its format detected, or named: one of
:data:`endopat.annotation.FORMATS`), finds each annotated frame's image in ``images`` (by its path
relative to that folder, else by file name; Label Studio's upload prefix ``1a2b3c4d-`` is ignored;
CVAT's mask export names stems), and writes::

    out/images/<stem><ext>   the image, copied as it is
    out/masks/<stem>.png     its instrument mask, 0/255, at the image's size (multi-class: class ids)
    out/classes.txt          the class list (multi-class imports)
    out/manifest.json        per frame: export file, tool, labels, annotator, group, image source

Multi-class: the classes come from ``classes`` (a model's or ``--classes``) or the folder's own
``classes.txt``; each tool label becomes the class of its name, or the one ``--label NAME=CLASS``
names; a label that is no class is a one-line error (:func:`endopat.annotation.export.choose_labels`).

The group (video) the readers give a frame comes from its stem (``endopat suggest`` names frames
``<video>_f<index>_t<seconds>s``: group ``<video>``). Everything is read and checked before the
first file is written, so a bad export leaves the folder as it was. Importing into a folder that
already has a frame adds nothing for an identical mask and refuses a different one, unless
``replace``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from endopat.annotation import FORMATS
from endopat.annotation.export import Annotated, ExportFiles, LabelChoice, Parsed
from endopat.annotation.label_studio import UPLOAD_PREFIX
from endopat.data.labeled import group_of
from endopat.errors import EndopatError, reading
from endopat.io import (
    IMAGE_SUFFIXES,
    atomic_path,
    atomic_write_text,
    is_hidden,
    output_folder,
    read_image,
    write_png,
)
from endopat.labels import BINARY, CLASSES_FILE, Labels, common_labels

MANIFEST = "manifest.json"


def read_export(export: str | Path, format: str | None = None, labels: "list[str] | LabelChoice | None" = None,
                annotator: str | None = None) -> Parsed:
    """The frames of an export, in ``format`` or the one detected; ``labels``: the ``--label`` values
    (or a :class:`LabelChoice` with the target's classes)."""
    if format is not None and format not in FORMATS:
        raise EndopatError(f"--format '{format}': choose one of {', '.join(FORMATS)}")
    with reading(export, "annotation export"):
        files = ExportFiles(export)
        if format is not None:
            return FORMATS[format].read(files, labels, annotator)
        for reader in FORMATS.values():
            if reader.detect(files):
                return reader.read(files, labels, annotator)
    raise EndopatError(f"{export}: not an export endopat reads ({', '.join(m.TOOL for m in FORMATS.values())})")


class _Images:
    """The images of a folder, found by relative path, file name or stem."""

    def __init__(self, root: Path):
        if not root.is_dir():
            raise EndopatError(f"{root}: " + ("not a folder" if root.exists() else "not found"))
        self.root = root
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                 and not is_hidden(p)]
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for p in files:
            self.by_name.setdefault(p.name, []).append(p)
            self.by_stem.setdefault(p.stem, []).append(p)

    def find(self, frame: Annotated) -> Path:
        direct = self.root / frame.name
        if direct.is_file():
            return direct
        name = Path(frame.name).name
        for table, key in ((self.by_name, name), (self.by_name, UPLOAD_PREFIX.sub("", name)),
                           (self.by_stem, name)):
            hits = table.get(key, [])
            if len(hits) > 1:
                raise EndopatError(f"{frame.where}: two images named '{key}' in {self.root} "
                                   f"({hits[0].relative_to(self.root)}, {hits[1].relative_to(self.root)})")
            if hits:
                return hits[0]
        raise EndopatError(f"{frame.where}: its image is not in {self.root}")


def _image_size(path: Path) -> tuple[int, int]:
    with reading(path, "image"), Image.open(path) as im:
        return im.height, im.width


def _existing_mask(out: Path, stem: str, classes: Labels) -> np.ndarray | None:
    path = out / "masks" / f"{stem}.png"
    if not path.is_file():
        return None
    return (read_image(path, mode="L") > 127) if classes.is_binary else read_image(path, mode="raw")


def _manifest(path: Path) -> dict:
    """The folder's import record (read before anything is written: a broken one stops the import)."""
    if not path.is_file():
        return {}
    with reading(path, "import manifest"):
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise EndopatError(f"{path}: not an import manifest (a JSON object by frame), a {type(manifest).__name__}")
        return manifest


def target_classes(out: Path, classes: Labels | None) -> Labels:
    """The classes an import writes: ``classes``, the folder's ``classes.txt`` (they must agree), or binary."""
    own = Labels.read(out / CLASSES_FILE) if (out / CLASSES_FILE).is_file() else None
    if classes is not None and own is not None:
        return common_labels([own, classes], f"{out / CLASSES_FILE} and the import's classes")
    return classes or own or BINARY


def import_export(export: str | Path, images: str | Path, out: str | Path, format: str | None = None,
                  labels: list[str] | None = None, annotator: str | None = None, replace: bool = False,
                  classes: Labels | None = None) -> dict:
    """Import ``export`` into the labeled folder ``out`` (see the module docstring); returns counts."""
    out, images = output_folder(out), Path(images)
    classes = target_classes(out, classes)
    parsed = read_export(export, format, LabelChoice(tuple(labels or ()), classes), annotator)
    found = _Images(images)
    plan, stems, counts = [], {}, Counter()
    for frame in parsed.frames:  # everything checked before anything is written
        image = found.find(frame)
        size = _image_size(image)
        if frame.size is not None and frame.size != size:
            raise EndopatError(f"{frame.where}: the export says {frame.size[1]}x{frame.size[0]}, {image} is "
                               f"{size[1]}x{size[0]}")
        mask = np.zeros(size, np.uint8) if frame.mask is None else frame.mask
        stem = image.stem
        if stem in stems:
            raise EndopatError(f"{frame.where}: two images with one name, '{stem}' ({stems[stem]} and {image})")
        stems[stem] = image
        old = _existing_mask(out, stem, classes)
        if old is not None and old.shape == mask.shape and np.array_equal(old, mask):
            counts["unchanged"] += 1
            continue
        if old is not None and not replace:
            raise EndopatError(f"{frame.where}: {out / 'masks' / (stem + '.png')} holds a different mask; "
                               "--replace replaces it")
        counts["replaced" if old is not None else "added"] += 1
        counts["empty"] += int(not mask.any())
        plan.append((frame, image, stem, mask))
    manifest_path = out / MANIFEST
    manifest = _manifest(manifest_path)
    for frame, image, stem, mask in plan:
        for old in (out / "images").glob(f"{stem}.*") if (out / "images").is_dir() else []:
            if old.suffix.lower() != image.suffix.lower():
                old.unlink()  # a replaced frame whose image came in another format
        with atomic_path(out / "images" / f"{stem}{image.suffix.lower()}") as tmp:
            tmp.write_bytes(image.read_bytes())
        write_png(out / "masks" / f"{stem}.png", (mask > 0).astype(np.uint8) * 255 if classes.is_binary else mask)
        manifest[stem] = {"export": str(Path(export)), "tool": parsed.tool, "frame": frame.where,
                          "labels": frame.labels, "annotator": frame.annotator, "image": str(image),
                          "group": group_of(stem), "export_group": frame.group}
    if not classes.is_binary and not (out / CLASSES_FILE).is_file():
        atomic_write_text(out / CLASSES_FILE, "".join(f"{i} {n}\n" for i, n in enumerate(classes.names))
                          + (f"{classes.ignore} ignore\n" if classes.ignore is not None else ""))
    atomic_write_text(manifest_path, json.dumps(dict(sorted(manifest.items())), indent=1))  # last
    return {"tool": parsed.tool, "frames": len(parsed.frames), **counts, "left_out": dict(parsed.left_out)}
