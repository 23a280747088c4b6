"""Segment new images and whole videos with a trained model (PyTorch checkpoint or ONNX file).

* an image or a folder of images -> ``OUT/masks/<stem>.png`` (0/255, at the image's own size) and
  ``OUT/areas.csv`` (per image, each class's share of the pixels); a multi-class model writes class
  ids instead (0 background, 1.. its classes; ``classes.txt`` names them) and
  ``OUT/overlays/<stem>.png`` (each class in its colour, outlined, with a legend);
* a video -> an overlay video, a per-frame table and, asked for, per-frame masks
  (:mod:`endopat.predict_video`);
* a folder -> its images as above, then each of its videos.

A run resumes after a kill: a folder's ``OUT/predict.json`` records the model file's digest, the
backend and the threshold before any mask is written, and a rerun with the same ones keeps every
mask already written (each is written whole, atomically); another model, backend or threshold
writes all again. A video is written in parts, and a rerun keeps the whole ones.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from endopat.config import MAX_BATCH
from endopat.data.video import video_info
from endopat.drawing import class_overlay
from endopat.errors import EndopatError
from endopat.export import OnnxSegmenter, cached_onnx
from endopat.io import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    atomic_write_csv,
    atomic_write_text,
    file_digest,
    list_images,
    list_videos,
    output_folder,
    read_cache,
    read_image,
    write_png,
)
from endopat.labels import CLASSES_FILE
from endopat.runtime import progress_bar
from endopat.predict_video import predict_video
from endopat.segmenter import Segmenter, class_ids, class_shares
from endopat.streams import batches

BACKENDS = ("auto", "onnx", "torch")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EndopatError(f"--backend '{backend}': choose one of {', '.join(BACKENDS)}")


def _has_onnxruntime() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def load_model(path: str | Path, device: str = "cpu", backend: str = "auto", log=None):
    """The segmenter that runs ``path`` (a checkpoint ``.pt`` or an export ``.onnx``).

    ``backend``: ``onnx`` runs onnxruntime (a checkpoint is exported once, parity-checked, and
    cached beside it: :func:`endopat.export.cached_onnx`); ``torch`` runs PyTorch; ``auto`` (the
    default) is onnx on a CPU when onnxruntime is installed (the ``export`` extra) and torch
    otherwise or on a GPU.
    """
    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: " + ("is a folder, not a model file" if path.is_dir() else "not found"))
    check_backend(backend)
    onnx_file = path.suffix.lower() == ".onnx"
    if onnx_file and backend == "torch":
        raise EndopatError(f"{path}: an ONNX file runs with onnxruntime, not --backend torch")
    if backend == "auto":
        backend = "onnx" if onnx_file or (device == "cpu" and _has_onnxruntime()) else "torch"
    if backend == "torch":
        return Segmenter(path, device)
    if not _has_onnxruntime():
        raise EndopatError("the onnx backend needs onnxruntime: pip install 'endopat[export]'")

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
    return OnnxSegmenter(path if onnx_file else cached_onnx(path, log), providers)


RECORD = "predict.json"  # what segmented the images of an output folder: a rerun after a kill resumes


def predict_images(model, paths: Sequence[Path], out: Path, batch_size: int = 8,
                   threshold: float | None = None, progress: Callable[[int], None] | None = None,
                   run: dict | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Each image's mask (and overlay and areas); ``run``: what makes the result (the model file's
    digest, the backend, the threshold), saved in ``out/predict.json`` before any mask, so that a
    rerun of the same run skips the images it finished (a kill loses nothing) and another run
    writes every mask again."""
    thr = model.threshold if threshold is None else threshold
    labels = model.labels
    areas, record = _kept(out, paths, labels, run)  # the images done: their areas.csv rows
    if areas and log:
        log(f"resuming: {len(areas)} of {len(paths)} images already segmented by this run ({out / RECORD})")
    if progress and areas:
        progress(len(areas))
    for chunk in batches(iter([p for p in paths if p not in areas]), batch_size):
        images = [read_image(p) for p in chunk]
        for p, image, prob in zip(chunk, images, model.probabilities(images)):
            ids = class_ids(prob, labels, thr)
            if record:  # before the first mask (and after the inputs proved readable: a bad one writes nothing)
                atomic_write_text(out / RECORD, json.dumps(run, indent=1))
                record = False
            if labels.is_binary:
                write_png(out / "masks" / f"{p.stem}.png", ids * 255)
            else:  # the overlay first: a mask on disk means its image is done
                write_png(out / "overlays" / f"{p.stem}.png", class_overlay(image, ids, labels))
                write_png(out / "masks" / f"{p.stem}.png", ids)
            areas[p] = class_shares(ids, labels)
        if progress:
            progress(len(chunk))
    atomic_write_csv(out / "areas.csv", ["image", *labels.names], [dict(image=p.name, **areas[p]) for p in paths])
    if not labels.is_binary:  # a binary mask is 0/255: no ids to name
        atomic_write_text(out / "masks" / CLASSES_FILE, "".join(f"{i} {n}\n" for i, n in enumerate(labels.names)))
    return [out / "masks" / f"{p.stem}.png" for p in paths]


def _kept(out: Path, paths: Sequence[Path], labels, run: dict | None) -> tuple[dict[Path, dict], bool]:
    """The images whose masks this same run already wrote, each with its areas row (the mask read
    back once: a damaged one is done again; nothing but the row is kept in memory), and whether
    ``run`` is to be recorded: none are kept when ``out`` holds another run's masks, and its record
    is replaced before the first mask is written."""
    if run is None:
        return {}, False
    if read_cache(out / RECORD, dict[str, Any]) != run:
        return {}, True
    kept = {}
    for p in paths:
        mask = out / "masks" / f"{p.stem}.png"
        if mask.is_file() and mask.stat().st_mtime >= p.stat().st_mtime:  # not an image changed since
            try:
                ids = read_image(mask, "L")
            except EndopatError:
                continue
            kept[p] = class_shares((ids > 0).astype(np.uint8) if labels.is_binary else ids, labels)
    return kept, False


def predict(model_path: str | Path, source: str | Path, out: str | Path, batch_size: int = 8,
            threshold: float | None = None, device: str = "cpu", save_masks: bool = False,
            progress: bool = True, backend: str = "auto", log=None) -> dict:
    """Segment an image, a video, or a folder of them (see the module docstring); ``backend`` as
    in :func:`load_model`. Returns ``{"masks": [image masks], "videos": [{"overlay", "csv",
    "frames"} a video]}``."""

    source, out = Path(source), Path(out)
    if threshold is not None and not 0 < threshold < 1:  # NaN too
        raise EndopatError(f"--threshold {threshold}: a probability strictly between 0 and 1")
    if not 1 <= batch_size <= MAX_BATCH:
        raise EndopatError(f"--batch-size {batch_size}: 1 to {MAX_BATCH}")
    check_backend(backend)
    images, videos = _inputs(source)
    output_folder(out)
    model = load_model(model_path, device, backend, log)
    run = {"model": str(model_path), "model_sha256": file_digest(model_path), "backend": type(model).__name__,
           "threshold": model.threshold if threshold is None else threshold}
    result: dict = {"masks": [], "videos": []}
    if images:
        with progress_bar("segmenting images", len(images), progress) as adv:
            result["masks"] = predict_images(model, images, out, batch_size, threshold, adv, run, log)
    for video in videos:  # each resumes on its own: a folder killed in its fifth video keeps four
        with progress_bar(f"segmenting {video.name}", video_info(video)["frames"] or None, progress) as adv:
            result["videos"].append(predict_video(model, video, out, batch_size, threshold, save_masks, adv,
                                                  run | {"video": str(video), "video_sha256": file_digest(video)}, log))
    return result


def _inputs(source: Path) -> tuple[list[Path], list[Path]]:
    """The images and the videos ``source`` names (a file, or a folder's), checked before any work:
    two inputs whose outputs would share a name are an error naming both."""
    if not source.exists():
        raise EndopatError(f"{source}: not found")
    if source.is_file():
        suffix = source.suffix.lower()
        if suffix not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            raise EndopatError(f"{source}: neither an image nor a video")
        return ([source], []) if suffix in IMAGE_SUFFIXES else ([], [source])
    images, videos = list_images(source), list_videos(source)
    if not images and not videos:
        raise EndopatError(f"{source}: no images or videos found")
    for paths, what in ((images, "masks/{}.png"), (videos, "{}_overlay.mp4")):
        seen: dict[str, Path] = {}
        for p in paths:
            if p.stem in seen:
                raise EndopatError(f"{seen[p.stem]} and {p.name}: both would write {what.format(p.stem)} (rename one)")
            seen[p.stem] = p
    return images, videos
