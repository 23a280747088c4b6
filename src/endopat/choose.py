"""Which frames to label: the strategies of ``endopat suggest`` and of a study's ``selection``
(random, diverse = greedy k-center, uncertain, hybrid = k-center weighted by uncertainty; the rules
are in :mod:`endopat.suggest`'s docstring and docs/method.md), over candidates and their embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from endopat.errors import EndopatError

STRATEGIES = ("random", "diverse", "uncertain", "hybrid")


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
