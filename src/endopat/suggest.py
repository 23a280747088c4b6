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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from endopat.errors import EndopatError

STRATEGIES = ("random", "diverse", "uncertain", "hybrid")
RANK_FIELDS = ["rank", "file", "video", "frame", "time_s", "strategy", "score", "distance", "uncertainty"]
THUMB = 96  # contact-sheet thumbnail height


@dataclass(frozen=True)
class Candidate:
    """An unlabeled frame: where it comes from (``path``: the video or image file; ``index``: the
    frame's index in the video, or in a store) and when (``time_s``; None for images)."""

    path: str
    video: str
    index: int
    time_s: float | None

    @property
    def stem(self) -> str:
        """The output file's stem: ``<video>_f<index>_t<seconds>s`` (an image keeps its own stem)."""
        if self.time_s is None:
            return self.video if self.index < 0 else f"{self.video}_f{self.index:06d}"
        return f"{self.video}_f{self.index:06d}_t{self.time_s:.2f}s"


# ---------------------------------------------------------------------------------------- sources

def iter_candidates(source: str | Path, fps: float | None = 1.0, stride: int | None = None
                    ) -> Iterator[tuple[Candidate, np.ndarray]]:
    """Stream ``(candidate, RGB frame at full resolution)`` from a video, a folder of videos or of
    images, or a frame store; videos sampled at ``fps`` (or every ``stride``-th frame)."""
    from endopat.data.frames import STORE_DATA, FrameStore, source_files, is_store
    from endopat.data.video import iter_frames, video_info
    from endopat.io import read_image

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
    from endopat.data.frames import FrameStore, is_store
    from endopat.data.video import iter_frames
    from endopat.io import read_image

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


# ------------------------------------------------------------------------------------- embeddings

class Embedder:
    """Pooled multi-level encoder features of a checkpoint (see the module docstring), and for a
    segmenter the uncertainty of its prediction."""

    def __init__(self, path: str | Path | None, device: str = "cpu"):
        from endopat.checkpoints import load_checkpoint, model_config
        from endopat.networks import arch_of, build_unet

        self.device = torch.device(device)
        self.net, self.kind = None, None
        if path is None:
            return
        ckpt = load_checkpoint(path)
        self.kind, self.cfg = ckpt["kind"], model_config(ckpt)
        self.in_channels = int(ckpt.get("in_channels", self.cfg.in_channels))
        last = arch_of(self.cfg).groups["last"][0] + "."
        out = next(v for k, v in ckpt["state_dict"].items() if k.startswith(last) and k.endswith("weight")).shape[0]
        self.net = build_unet(self.cfg, in_channels=self.in_channels, out_channels=out)
        self.net.load_state_dict(ckpt["state_dict"])
        self.net.to(self.device).eval()

    @property
    def segmenter(self) -> bool:
        return self.kind == "segmenter"

    def _input(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """The network input as evaluation makes it, in the channels this network was built for (a
        generator sees L even when its config's segmenter input is Lab)."""
        from endopat.evaluate import network_input

        cfg = self.cfg.model_copy(update={"input": "L" if self.in_channels == 1 else "Lab"})
        return network_input(cfg, frames).to(self.device)

    @torch.no_grad()
    def embed(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if self.net is None:
            return thumbnail_embedding(frames)
        levels = encoder_levels(self.net, self._input(frames))
        parts = [torch.nn.functional.normalize(f.float().mean(dim=(2, 3)), dim=1) for f in levels]
        return torch.nn.functional.normalize(torch.cat(parts, 1), dim=1).cpu().numpy()

    @torch.no_grad()
    def uncertainty(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(uncertainty score, foreground probability maps at network size) per frame."""
        x = self._input(frames)
        views = []
        for dims in ((), (3,), (2,), (2, 3)):  # identity, horizontal, vertical, both flips
            xv = x.flip(dims) if dims else x
            p = torch.softmax(self.net(xv).float(), 1)[:, 1]
            views.append(p.flip([d - 1 for d in dims]) if dims else p)
        p = torch.stack(views)  # (4, B, H, W)
        mean = p.mean(0).clamp(1e-6, 1 - 1e-6)
        entropy = -(mean * mean.log2() + (1 - mean) * (1 - mean).log2())  # bits, in [0, 1]
        score = entropy.mean(dim=(1, 2)) + p.var(0, unbiased=False).mean(dim=(1, 2))
        return score.cpu().numpy(), mean.cpu().numpy()


def encoder_levels(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every encoder level's output (5 for each architecture of :mod:`endopat.networks`)."""
    if hasattr(net, "encoder"):
        return list(net.encoder(x))
    out = []
    for name in ("conv_0", "down_1", "down_2", "down_3", "down_4"):
        x = getattr(net, name)(x)
        out.append(x)
    return out


def thumbnail_embedding(frames: Sequence[np.ndarray]) -> np.ndarray:
    """No model: the 8x8 normalised-Lab thumbnail of each frame, flattened (colour layout only)."""
    from endopat.colour import rgb_uint8_to_lab_n
    from endopat.data.geometry import fit_image

    small = np.stack([fit_image(f, (8, 8), "stretch") for f in frames])
    return rgb_uint8_to_lab_n(torch.from_numpy(small)).flatten(1).numpy()


# -------------------------------------------------------------------------------------- selection

def k_center(emb: np.ndarray, n: int, centers: np.ndarray | None = None, blocked: Callable[[int], np.ndarray] | None = None,
             weight: np.ndarray | None = None, available: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Greedy k-center: ``n`` indices of ``emb`` (rows), each the farthest from everything chosen
    (and from ``centers``) at its turn; with ``weight`` the argmax of (distance / max distance) *
    weight (the hybrid rule). ``blocked(i)`` returns the indices that choosing ``i`` makes
    unavailable (neighbouring frames); ``available`` masks candidates from the start. Returns the
    indices and the distance each had when chosen."""
    emb = emb.astype(np.float32, copy=False)
    ok = np.ones(len(emb), bool) if available is None else available.copy()
    if centers is not None and len(centers):
        dist = np.full(len(emb), np.inf, np.float32)
        for c in centers.astype(np.float32):
            dist = np.minimum(dist, np.linalg.norm(emb - c, axis=1))
    else:  # start from the frame farthest from the mean (deterministic)
        dist = np.linalg.norm(emb - emb.mean(0), axis=1)
    chosen, at = [], []
    for _ in range(n):
        if not ok.any():
            break
        d = np.where(ok, dist, -np.inf)
        score = d if weight is None else np.where(ok, d / max(float(d.max()), 1e-12) * weight, -np.inf)
        i = int(np.argmax(score))
        chosen.append(i)
        at.append(float(dist[i]))
        ok[i] = False
        if blocked is not None:
            ok[blocked(i)] = False
        dist = np.minimum(dist, np.linalg.norm(emb - emb[i], axis=1))
    return chosen, at


def rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1]: the largest value gets 1."""
    order = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return (order + 1) / len(values)


def neighbours(cands: Sequence[Candidate], min_gap: float) -> Callable[[int], np.ndarray]:
    """``blocked(i)``: candidates of i's video within ``min_gap`` seconds of it (itself included)."""
    video = np.array([c.path for c in cands])
    time = np.array([np.nan if c.time_s is None else c.time_s for c in cands])

    def blocked(i: int) -> np.ndarray:
        if np.isnan(time[i]):
            return np.array([i])
        return np.nonzero((video == video[i]) & (np.abs(time - time[i]) < min_gap))[0]

    return blocked


def choose(strategy: str, n: int, emb: np.ndarray, cands: Sequence[Candidate], seed: int = 0,
           uncertainty: np.ndarray | None = None, centers: np.ndarray | None = None,
           available: np.ndarray | None = None, min_gap: float = 2.0) -> list[tuple[int, float, float]]:
    """``(index, distance, uncertainty)`` of the ``n`` chosen candidates, in order of choice."""
    if strategy not in STRATEGIES:
        raise EndopatError(f"strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")
    blocked = neighbours(cands, min_gap)
    ok = np.ones(len(cands), bool) if available is None else available.copy()
    u = np.zeros(len(cands)) if uncertainty is None else uncertainty
    if strategy in ("random", "uncertain"):  # an order of preference, neighbours of a pick skipped
        order = (np.random.default_rng(seed).permutation(len(cands)) if strategy == "random"
                 else np.argsort(-u, kind="stable"))
        out = []
        for i in order:
            if len(out) == n:
                break
            if ok[i]:
                out.append((int(i), float("nan"), float(u[i])))
                ok[blocked(int(i))] = False
        return out
    weight = rank01(u) if strategy == "hybrid" else None
    idx, dist = k_center(emb, n, centers, blocked, weight, ok)
    return [(i, d, float(u[i])) for i, d in zip(idx, dist)]


# ------------------------------------------------------------------------------------------- run

def _labeled_images(labeled: str | Path) -> list[Path]:
    """The images of a labeled folder (any depth; folders named like masks or labels skipped)."""
    from endopat.io import IMAGE_SUFFIXES, is_hidden

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


def suggest(source: str | Path, n: int, out: str | Path, model: str | Path | None = None,
            labeled: str | Path | None = None, strategy: str = "diverse", seed: int = 0, fps: float = 1.0,
            min_gap: float = 2.0, duplicate_distance: float = 1e-3, batch_size: int = 16, device: str = "cpu",
            progress: bool = True, log=print) -> dict:
    """Choose ``n`` frames of ``source`` to label next and write them with the ranking, a contact
    sheet and annotation-tool imports to ``out`` (see the module docstring)."""
    from endopat.annotation import write_cvat, write_label_studio
    from endopat.io import atomic_write_csv, output_folder, read_image, write_png
    from endopat.runtime import progress_bar

    if strategy not in STRATEGIES:
        raise EndopatError(f"--strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise EndopatError(f"-n {n}: choose at least one frame")
    output_folder(out)
    embedder = Embedder(model, device)
    if strategy in ("uncertain", "hybrid") and not embedder.segmenter:
        raise EndopatError(f"--strategy {strategy} needs a segmenter (--model: a fine-tuned checkpoint"
                           + (f"; {model} is a '{embedder.kind}' one)" if model else ")"))
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
    if not cands:
        raise EndopatError(f"{source}: no frames to suggest from")
    emb = np.concatenate(embs)
    uncertainty = np.concatenate(unc) if unc else None
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
                     "score": _num(score), "distance": _num(dist), "uncertainty": _num(u if unc else float("nan"))})
    atomic_write_csv(out / "ranking.csv", RANK_FIELDS, rows)
    write_png(out / "contact_sheet.png", contact_sheet(thumbs))
    write_cvat(out / "cvat", chosen, masks or None)
    write_label_studio(out / "label_studio", chosen, masks or None, model_version=str(model) if model else None)
    return {"chosen": len(rows), "candidates": len(cands), "ranking": out / "ranking.csv"}


def _num(v: float) -> str:
    return "" if v is None or v != v else f"{v:.6g}"


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    from endopat.data.geometry import fit_image

    h, w = frame.shape[:2]
    return fit_image(frame, (THUMB, max(1, round(w * THUMB / h))), "stretch")


def _full_mask(embedder: Embedder, frame: np.ndarray) -> np.ndarray:
    from endopat.data.geometry import restore

    _, prob = embedder.uncertainty([frame])
    return restore(torch.from_numpy(prob), frame.shape[:2], embedder.cfg.fit)[0].numpy() >= 0.5


def contact_sheet(thumbs: Sequence[np.ndarray], columns: int = 6) -> np.ndarray:
    """Thumbnails in rank order, left to right, with the rank drawn in each corner."""
    from PIL import Image, ImageDraw

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
