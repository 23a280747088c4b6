"""Which frames to label next: rank unlabeled frames by diversity and uncertainty.

``suggest(SOURCE, n, OUT, model=CKPT, labeled=EXISTING, strategy=...)``; SOURCE is a video, a folder
of videos, a folder of images, or a frame store (:mod:`endopat.data.frames`). Frames are sampled
(``fps``, default 1 per second of video) and streamed: only their embeddings (a few hundred floats
each) and a small thumbnail stay in memory; the chosen frames are decoded again at full resolution
when they are written.

**Embedding.** The encoder of a checkpoint (any auxiliary-task checkpoint or a segmenter): each
encoder level's output is averaged over space, each level's vector is L2-normalised, and the
levels are concatenated and normalised again (so coarse and fine features weigh alike). Without a
model: the frame's 8x8 Lab thumbnail (colour layout only; documented fallback).

**Strategies.**

* ``random``: seeded uniform choice (the study's default, the paper's).
* ``diverse``: greedy k-center (core-set; Sener & Savarese 2018): start from the frames already
  labeled (``labeled``; else the frame farthest from the mean), then repeatedly take the frame
  farthest (euclidean distance of embeddings) from everything chosen so far.
* ``uncertain``: the segmenter's predictive entropy, averaged over pixels and over four flipped
  views (test-time augmentation); the variance of the foreground probability across the views is
  the epistemic term (MONAI Label's endoscopy app uses MC-dropout variance; endopat's networks have
  no dropout, so flips stand in for the dropout masks). Score = mean entropy + view variance.
* ``hybrid``: k-center weighted by uncertainty: each greedy step takes the frame with the largest
  ``d * u``, with d the k-center distance divided by its current maximum and u the uncertainty's
  rank in (0, 1].

For every strategy a frame within ``min_gap`` seconds of a chosen frame of the same video is not
chosen (neighbouring frames are near-duplicates), and frames already labeled are excluded: by name
(a labeled image whose stem is a candidate's output stem) and by embedding (closer than
``duplicate_distance`` to a labeled frame). Deterministic for a seed.

Outputs in OUT: ``frames/<video>_f<index>_t<seconds>s.png`` (full resolution), ``ranking.csv``,
``contact_sheet.png``, ``cvat/`` (CVAT for images 1.1 ``annotations.xml`` + ``images.txt``) and
``label_studio/`` (``tasks.json`` + ``label_config.xml``), with the segmenter's masks as
pre-annotations when ``model`` is a segmenter (:mod:`endopat.annotation`).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from endopat.annotation import write_cvat, write_label_studio
from endopat.choose import STRATEGIES, Candidate, choose
from endopat.data.frames import check_sampling, source_files
from endopat.data.store import STORE_DATA, FrameStore, is_store
from endopat.data.geometry import fit_image, restore
from endopat.data.video import iter_frames, video_info
from endopat.embedding import Embedder
from endopat.errors import EndopatError
from endopat.io import (
    IMAGE_SUFFIXES,
    atomic_write_csv,
    is_hidden,
    output_folder,
    read_image,
    write_png,
)
from endopat.runtime import progress_bar
from endopat.seeds import check_seed
from endopat.segmenter import class_ids

RANK_FIELDS = ["rank", "file", "video", "frame", "time_s", "strategy", "score", "distance", "uncertainty"]
THUMB = 96  # contact-sheet thumbnail height


# ---------------------------------------------------------------------------------------- sources

def iter_candidates(source: str | Path, fps: float | None = 1.0, stride: int | None = None
                    ) -> Iterator[tuple[Candidate, np.ndarray]]:
    """Stream ``(candidate, RGB frame at full resolution)`` from a video, a folder of videos or of
    images, or a frame store; videos sampled at ``fps`` (or every ``stride``-th frame)."""

    source = Path(source)
    if not source.exists():
        raise EndopatError(f"{source}: not found")
    if source.is_dir() and is_store(source):  # read, not memory-mapped: mapped pages would count as
        h, w = FrameStore(source).size  # resident memory growing with the store
        with open(source / STORE_DATA, "rb") as fh:
            for i in itertools.count():
                buf = fh.read(h * w * 3)
                if len(buf) < h * w * 3:
                    return
                yield Candidate(str(source), "store", i, None), np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    kind, files = source_files(source)
    for path in files:
        if kind == "videos":
            rate = video_info(path)["fps"] or 25.0
            step = stride if stride else (max(1, round(rate / fps)) if fps else 1)
            for index, frame in iter_frames(path, stride=step):
                yield Candidate(str(path), path.stem, index, round(index / rate, 2)), frame
        else:
            yield Candidate(str(path), path.stem, -1, None), read_image(path)


def read_frames(cands: Sequence[Candidate]) -> list[np.ndarray]:
    """The candidates' frames again, at full resolution (chosen frames are decoded twice rather
    than kept): one decoding pass per video, up to its last wanted frame."""

    got: dict[Candidate, np.ndarray] = {}
    for path in dict.fromkeys(c.path for c in cands):
        mine = {c.index: c for c in cands if c.path == path}
        p = Path(path)
        if p.is_dir() and is_store(p):
            store = FrameStore(p)
            got.update({c: store[i] for i, c in mine.items()})
        elif next(iter(mine.values())).time_s is None:
            got.update({c: read_image(p) for c in mine.values()})
        else:
            last = max(mine)
            for index, frame in iter_frames(p):
                if index in mine:
                    got[mine[index]] = frame
                if index >= last:
                    break
    missing = [c for c in cands if c not in got]
    if missing:
        raise EndopatError(f"{missing[0].path}: frame {missing[0].index} could not be read again")
    return [got[c] for c in cands]


# ------------------------------------------------------------------------------------------- run

def _labeled_images(labeled: str | Path) -> list[Path]:
    """The images of a labeled folder (any depth; folders named like masks or labels skipped)."""

    labeled = Path(labeled)
    if not labeled.exists():
        raise EndopatError(f"{labeled}: not found")
    if labeled.is_file():
        return [labeled]
    images = sorted(p for p in labeled.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p)
                    and not any(w in part.lower() for part in p.relative_to(labeled).parts[:-1]
                                for w in ("mask", "label", "ground_truth")))
    if not images:
        raise EndopatError(f"{labeled}: no images found")
    return images


def _embed_all(embedder: Embedder, source, fps: float, batch_size: int, progress: bool
               ) -> tuple[list[Candidate], np.ndarray | None, np.ndarray | None]:
    """Every candidate frame of ``source``, streamed: its embedding and (a segmenter's) uncertainty."""

    cands: list[Candidate] = []
    embs, unc = [], []

    def flush(batch: list[np.ndarray]) -> None:
        embs.append(embedder.embed(batch))
        if embedder.segmenter:
            unc.append(embedder.uncertainty(batch)[0])

    with progress_bar("embedding frames", None, progress) as advance:
        batch: list[np.ndarray] = []
        for cand, frame in iter_candidates(source, fps):
            cands.append(cand)
            batch.append(frame)
            if len(batch) == batch_size:
                flush(batch)
                advance(len(batch))
                batch = []
        if batch:
            flush(batch)
            advance(len(batch))
    return cands, np.concatenate(embs) if embs else None, np.concatenate(unc) if unc else None


def suggest(source: str | Path, n: int, out: str | Path, model: str | Path | None = None,
            labeled: str | Path | None = None, strategy: str = "diverse", seed: int = 0, fps: float = 1.0,
            min_gap: float = 2.0, duplicate_distance: float = 1e-3, batch_size: int = 16, device: str = "cpu",
            progress: bool = True, log=print) -> dict:
    """Choose ``n`` frames of ``source`` to label next and write them with the ranking, a contact
    sheet and annotation-tool imports to ``out`` (see the module docstring)."""

    if strategy not in STRATEGIES:
        raise EndopatError(f"--strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise EndopatError(f"-n {n}: choose at least one frame")
    check_seed(seed, "suggest")
    check_sampling(1, fps, None)
    if not 0 <= min_gap < math.inf:
        raise EndopatError(f"--min-gap {min_gap}: seconds must be a number of at least 0")
    if batch_size < 1:
        raise EndopatError(f"batch size {batch_size}: at least 1")
    output_folder(out)
    embedder = Embedder(model, device)
    if strategy in ("uncertain", "hybrid") and not embedder.segmenter:
        raise EndopatError(f"--strategy {strategy} needs a segmenter (--model: a fine-tuned checkpoint"
                           + (f"; {model} is a '{embedder.kind}' one)" if model else ")"))
    cands, emb, uncertainty = _embed_all(embedder, source, fps, batch_size, progress)
    if not cands:
        raise EndopatError(f"{source}: no frames to suggest from")
    available, centers = np.ones(len(cands), bool), None
    if labeled is not None:
        paths = _labeled_images(labeled)
        stems = {p.stem for p in paths}
        centers = np.concatenate([embedder.embed([read_image(p) for p in paths[i : i + batch_size]])
                                  for i in range(0, len(paths), batch_size)])
        near = np.array([np.linalg.norm(centers - e, axis=1).min() < duplicate_distance for e in emb])
        available &= ~near & np.array([c.stem not in stems for c in cands])
        log(f"excluded {int((~available).sum())} of {len(cands)} frames already labeled ({len(paths)} labeled images)")
    picks = choose(strategy, n, emb, cands, seed, uncertainty, centers, available, min_gap)
    if len(picks) < n:
        log(f"note: only {len(picks)} frames could be chosen (min_gap {min_gap} s, labeled exclusions)")

    out = Path(out)
    rows, chosen, masks, thumbs = [], [], [], []
    frames = read_frames([cands[i] for i, _, _ in picks])
    for rank, ((i, dist, u), frame) in enumerate(zip(picks, frames), 1):
        c = cands[i]
        thumbs.append(_thumbnail(frame))
        file = f"frames/{c.stem}.png"
        write_png(out / file, frame)
        chosen.append((file, frame.shape[:2]))
        if embedder.segmenter:
            masks.append(_full_mask(embedder, frame))
        score = {"random": float(rank), "diverse": dist, "uncertain": u}.get(strategy, dist)
        rows.append({"rank": rank, "file": file, "video": c.video, "frame": c.index,
                     "time_s": "" if c.time_s is None else c.time_s, "strategy": strategy,
                     "score": _num(score), "distance": _num(dist), "uncertainty": _num(u if uncertainty is not None else float("nan"))})
    atomic_write_csv(out / "ranking.csv", RANK_FIELDS, rows)
    write_png(out / "contact_sheet.png", contact_sheet(thumbs))
    write_cvat(out / "cvat", chosen, masks or None, embedder.labels)
    write_label_studio(out / "label_studio", chosen, masks or None, model_version=str(model) if model else None,
                       labels=embedder.labels)
    return {"chosen": len(rows), "candidates": len(cands), "ranking": out / "ranking.csv"}


def _num(v: float) -> str:
    return "" if v is None or v != v else f"{v:.6g}"


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return fit_image(frame, (THUMB, max(1, round(w * THUMB / h))), "stretch")


def _full_mask(embedder: Embedder, frame: np.ndarray) -> np.ndarray:
    """The model's class-id mask of ``frame`` at its size (the mean over flipped views; binary: at
    the model's threshold)."""
    _, prob = embedder.uncertainty([frame])
    p = torch.from_numpy(prob[0])
    binary = embedder.labels.is_binary
    full = restore(p[None] if binary else p, frame.shape[:2], embedder.cfg.fit).numpy()
    return class_ids(full[0] if binary else full, embedder.labels, embedder.threshold)


def contact_sheet(thumbs: Sequence[np.ndarray], columns: int = 6) -> np.ndarray:
    """Thumbnails in rank order, left to right, with the rank drawn in each corner."""

    width = max(t.shape[1] for t in thumbs)
    rows = -(-len(thumbs) // columns)
    sheet = Image.new("RGB", (columns * (width + 4), rows * (THUMB + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, t in enumerate(thumbs):
        x, y = (k % columns) * (width + 4) + 2, (k // columns) * (THUMB + 4) + 2
        sheet.paste(Image.fromarray(t), (x, y))
        draw.rectangle([x, y, x + 18, y + 11], fill=(0, 0, 0))
        draw.text((x + 2, y), str(k + 1), fill=(255, 255, 0))
    return np.asarray(sheet)
