"""Segment new images and whole videos with a trained model (PyTorch checkpoint or ONNX file).

* an image or a folder of images -> ``OUT/masks/<stem>.png`` (0/255, at the image's own size);
* a video -> ``OUT/<stem>_overlay.mp4`` (instruments tinted, outlined) and ``OUT/<stem>_frames.csv``
  (frame index, time, instrument area fraction, mean foreground probability), and with
  ``save_masks`` the per-frame masks in ``OUT/<stem>_masks/``.

Videos stream: decode + preprocess -> infer -> draw + encode, in three threads linked by short
queues (they overlap), so memory does not grow with the video's length.
"""

from __future__ import annotations

import importlib.util
import queue
import threading
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from endopat.data.video import iter_frames, video_info, write_video
from endopat.errors import EndopatError
from endopat.evaluate import Segmenter, full_resolution
from endopat.export import OnnxSegmenter, cached_onnx
from endopat.io import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    atomic_write_csv,
    list_images,
    output_folder,
    read_image,
    write_png,
)
from endopat.runtime import progress_bar

TINT = np.array([0, 255, 120], dtype=np.float32)  # instrument tint (green-cyan: absent in tissue)
OUTLINE = np.array([255, 255, 0], dtype=np.uint8)
FRAME_FIELDS = ["frame", "time_s", "area_fraction", "mean_probability"]


BACKENDS = ("auto", "onnx", "torch")


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
    if backend not in BACKENDS:
        raise EndopatError(f"--backend '{backend}': choose one of {', '.join(BACKENDS)}")
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


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask (mask minus its 4-neighbour erosion)."""
    m = np.pad(mask, 1, constant_values=False)
    eroded = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~eroded


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The frame with instrument pixels tinted and outlined (only masked pixels are blended)."""
    out = frame.copy()
    out[mask] = ((1 - alpha) * out[mask] + alpha * TINT).astype(np.uint8)
    out[outline(mask)] = OUTLINE
    return out


def threaded(it: Iterator, maxsize: int = 16) -> Iterator:
    """Run the iterator ``it`` in a background thread, ``maxsize`` items ahead (exceptions re-raised).

    Decoding, inference and encoding then overlap: PyAV and PyTorch release the GIL in their C code.
    """
    q: queue.Queue = queue.Queue(maxsize)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put((True, item))
        except BaseException as err:  # handed to the consumer
            q.put((False, err))
        finally:
            q.put((True, done))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()


def _batches(it: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in it:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_images(model, paths: Sequence[Path], out: Path, batch_size: int = 8,
                   threshold: float | None = None, progress: Callable[[int], None] | None = None) -> list[Path]:
    thr = model.threshold if threshold is None else threshold
    written = []
    for chunk in _batches(iter(paths), batch_size):
        images = [read_image(p) for p in chunk]
        for p, prob in zip(chunk, model.probabilities(images)):
            target = out / "masks" / f"{p.stem}.png"
            write_png(target, ((prob >= thr) * 255).astype(np.uint8))
            written.append(target)
        if progress:
            progress(len(chunk))
    return written


def predict_video(model, video: Path, out: Path, batch_size: int = 8, threshold: float | None = None,
                  save_masks: bool = False, progress: Callable[[int], None] | None = None) -> dict:


    thr = model.threshold if threshold is None else threshold
    fps = video_info(video)["fps"] or 25.0
    rows: list[dict] = []

    # four stages on three threads, linked by short queues: decode + fit + Lab | network | masks +
    # overlay + encode, so preprocessing and drawing overlap with the network's own threads
    def prepared() -> Iterator[tuple[list, torch.Tensor]]:
        for chunk in _batches(iter_frames(video), batch_size):
            yield chunk, model.network_input([f for _, f in chunk])

    def inferred() -> Iterator[tuple[list, torch.Tensor]]:
        for chunk, x in threaded(prepared(), 2):
            yield chunk, model.forward(x)

    def drawn() -> Iterator[np.ndarray]:
        for chunk, prob in threaded(inferred(), 2):
            probs = full_resolution(model.cfg, prob, [f.shape[:2] for _, f in chunk])
            for (index, frame), prob in zip(chunk, probs):
                mask = prob >= thr
                rows.append({"frame": index, "time_s": round(index / fps, 4),
                             "area_fraction": float(mask.mean()), "mean_probability": float(prob.mean())})
                if save_masks:
                    write_png(out / f"{video.stem}_masks" / f"frame_{index:06d}.png", mask.astype(np.uint8) * 255)
                yield overlay(frame, mask)
            if progress:
                progress(len(chunk))

    overlay_path = out / f"{video.stem}_overlay.mp4"
    # a preview video: x264's veryfast preset encodes in half the time of medium at about the same size
    n = write_video(overlay_path, drawn(), fps=max(1, round(fps)), preset="veryfast")
    csv_path = out / f"{video.stem}_frames.csv"
    atomic_write_csv(csv_path, FRAME_FIELDS, rows)
    return {"overlay": overlay_path, "csv": csv_path, "frames": n}


def predict(model_path: str | Path, source: str | Path, out: str | Path, batch_size: int = 8,
            threshold: float | None = None, device: str = "cpu", save_masks: bool = False,
            progress: bool = True, backend: str = "auto", log=None) -> dict:
    """Segment an image, a folder of images, or a video (see the module docstring); ``backend``
    as in :func:`load_model`."""

    source, out = Path(source), Path(out)
    if not source.exists():
        raise EndopatError(f"{source}: not found")
    output_folder(out)
    model = load_model(model_path, device, backend, log)
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:

        with progress_bar(f"segmenting {source.name}", video_info(source)["frames"] or None, progress) as adv:
            return predict_video(model, source, out, batch_size, threshold, save_masks, adv)
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise EndopatError(f"{source}: neither an image nor a video")
        paths = [source]
    else:
        paths = list_images(source)
        if not paths:
            raise EndopatError(f"{source}: no images found")
    with progress_bar("segmenting images", len(paths), progress) as adv:
        masks = predict_images(model, paths, out, batch_size, threshold, adv)
    return {"masks": masks}
