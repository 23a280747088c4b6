"""Segment a whole video: an overlay video, a per-frame table and, asked for, per-frame masks.

* ``OUT/<stem>_overlay.mp4``: instruments tinted and outlined (a multi-class model: each class in
  its colour);
* ``OUT/<stem>_frames.csv``: frame index, time, instrument area fraction and mean foreground
  probability (multi-class: each class's area fraction and the mean confidence);
* with ``save_masks``, ``OUT/<stem>_masks/frame_NNNNNN.png`` (0/255, or class ids).

The work streams in four stages on three threads linked by short queues — decode + fit + Lab |
network | masks + overlay + encode — so they overlap and memory does not grow with the video.

A killed run resumes: the overlay and the table are written in parts of :data:`PART_FRAMES` frames
in ``OUT/<stem>_parts/`` (:class:`endopat.data.video_parts.VideoParts`), and a rerun of the same run
(model file, backend, threshold, video, masks) keeps the whole parts, skips their frames without
segmenting them, and joins the parts when the last frame is in. ``OUT/<stem>_predict.json`` then
records the finished run: a rerun of the same skips the video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from endopat.data.video import iter_frames, video_info
from endopat.data.video_parts import VideoParts
from endopat.drawing import class_overlay, overlay
from endopat.io import atomic_write_text, read_cache, write_png
from endopat.segmenter import class_ids, class_shares, confidence, full_resolution
from endopat.streams import batches, threaded

FRAME_FIELDS = ["frame", "time_s", "area_fraction", "mean_probability"]
# the frames of a part: a kill loses at most these; x264's default keyframe interval, so that the
# keyframe each part starts on adds none
PART_FRAMES = 250


def frame_fields(labels) -> list[str]:
    """The per-frame table's columns for a model's labels."""
    if labels.is_binary:
        return FRAME_FIELDS
    return ["frame", "time_s", *(f"area_{n}" for n in labels.names), "mean_confidence"]


def predict_video(model, video: Path, out: Path, batch_size: int = 8, threshold: float | None = None,
                  save_masks: bool = False, progress: Callable[[int], None] | None = None,
                  run: dict | None = None, log: Callable[[str], None] | None = None,
                  part_frames: int = PART_FRAMES) -> dict:
    """Segment ``video`` into ``out`` (see the module docstring); ``run``: what makes the result
    (the model file's digest, the backend, the threshold), with which a rerun resumes."""
    thr = model.threshold if threshold is None else threshold
    labels = model.labels
    fps = video_info(video)["fps"] or 25.0
    masks = out / f"{video.stem}_masks"
    overlay_path, csv_path = out / f"{video.stem}_overlay.mp4", out / f"{video.stem}_frames.csv"
    result = {"overlay": overlay_path, "csv": csv_path}
    record, finished = {**(run or {}), "threshold": thr, "save_masks": save_masks}, out / f"{video.stem}_predict.json"
    if (frames := _finished(finished, record, [overlay_path, csv_path])) is not None:
        _say(log, progress, frames, f"{video.name}: already segmented by this run ({finished})")
        return result | {"frames": frames}
    finished.unlink(missing_ok=True)  # the outputs there are about to change
    parts = VideoParts(out / f"{video.stem}_parts", record, frame_fields(labels), part_frames, fps=max(1, round(fps)))
    if parts.frames:
        _say(log, progress, parts.frames, f"resuming: {parts.frames} frames of {video.name} already segmented by "
             f"this run ({parts.folder})")

    def prepared() -> Iterator[tuple[list, torch.Tensor]]:
        for chunk in batches(iter_frames(video, start=parts.frames), batch_size):
            yield chunk, model.network_input([f for _, f in chunk])

    def inferred() -> Iterator[tuple[list, torch.Tensor]]:
        for chunk, x in threaded(prepared(), 2):
            yield chunk, model.forward(x)

    def drawn() -> Iterator[tuple[np.ndarray, dict]]:
        for chunk, prob in threaded(inferred(), 2):
            probs = full_resolution(model.cfg, prob, [f.shape[:2] for _, f in chunk])
            for (index, frame), prob in zip(chunk, probs):
                row = {"frame": index, "time_s": round(index / fps, 4)}
                if labels.is_binary:
                    ids = (prob >= thr).astype(np.uint8)
                    row |= {"area_fraction": float(ids.mean()), "mean_probability": float(prob.mean())}
                    picture = overlay(frame, ids.astype(bool))
                else:
                    ids = class_ids(prob, labels)
                    row |= {f"area_{n}": v for n, v in class_shares(ids, labels).items()}
                    row["mean_confidence"] = float(confidence(prob, labels).mean())
                    picture = class_overlay(frame, ids, labels)
                if save_masks:
                    write_png(masks / f"frame_{index:06d}.png", ids * 255 if labels.is_binary else ids)
                yield picture, row
            if progress:
                progress(len(chunk))

    if not parts.complete:
        parts.write(drawn())
    n = parts.join(overlay_path, csv_path)
    atomic_write_text(finished, Finished(run=record, frames=n).model_dump_json(indent=1))
    parts.remove()
    return result | {"frames": n}


def _finished(record_file: Path, run: dict, outputs: list[Path]) -> int | None:
    """The frames of a finished run of the same ``run`` whose ``outputs`` are all there, or None."""
    done = read_cache(record_file, Finished)
    ok = done is not None and done.run == run and all(p.is_file() for p in outputs)
    return done.frames if ok else None


def _say(log, progress, frames: int, line: str) -> None:
    if log:
        log(line)
    if progress:
        progress(frames)


class Finished(BaseModel):
    """``OUT/<stem>_predict.json``: what made a video's finished outputs (a rerun of the same skips it)."""

    model_config = ConfigDict(extra="forbid")
    run: dict[str, Any]
    frames: int
