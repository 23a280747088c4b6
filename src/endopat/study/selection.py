"""How a cell's labeled frames are drawn from the training pool: a method's ``selection``.

``random`` (the paper's, the default): the split's disjoint random subset of the fraction. The
others choose as many frames as that subset holds, from the whole training pool, with
:mod:`endopat.suggest`'s rules, so every strategy is compared at the same label counts:

* ``diverse``: greedy k-center in the embedding of the checkpoint the method starts from (its
  pretraining stage; a method without one uses the frames' 8x8 Lab thumbnails), from a first frame
  drawn with the cell's seed. Subsets of one fraction are drawn independently (each from its own
  first frame), not disjoint: a disjoint second subset would only get what the first left.
* ``uncertain`` / ``hybrid``: two rounds, as an annotator would: round 1 labels the first half of
  the cell's random subset and fine-tunes on it (the cell's own settings and seed, from the
  method's start); that segmenter's uncertainty (entropy over flipped views) then picks the other
  half from the rest of the pool, alone (``uncertain``) or weighting the k-center distance in its
  own embedding, starting from the round-1 frames (``hybrid``). The cell then fine-tunes on both
  halves as any cell does. Round 1 costs one more fine-tuning per cell.

**Labeling rounds** (``selection: {strategy: ..., rounds: [n1, n2, ...]}``), the way people label:
round 1 draws n1 frames (at random with the cell's seed; ``diverse`` by k-center in the start
checkpoint's embedding); every later round keeps what is labeled and adds frames up to its count,
chosen from the rest of the pool by the previous round's fine-tuned model (its embedding for
``diverse``, its uncertainty for ``uncertain``, both for ``hybrid``; ``random`` draws them). Each
round fine-tunes from the method's start on what it has labeled, like any cell, so that a strategy
and its random twin differ only in which frames they labeled.

The chosen ids are written to the cell's ``selection.json`` and reused when the cell resumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel

from endopat.choose import Candidate, choose
from endopat.data.labeled import load_image
from endopat.embedding import Embedder
from endopat.io import atomic_write_text, read_record

SELECTION = "selection.json"  # a cell's chosen ids, reused when it resumes and read by its next round


class _Selection(BaseModel):
    ids: list[str]


def saved_ids(folder: Path) -> list[str]:
    """The ids a cell chose (its ``selection.json``); a damaged file is one line naming it."""
    return read_record(folder / SELECTION, "labeling round's selection", _Selection).ids


def _images(data, ids: list[str]) -> list[np.ndarray]:
    return [load_image(s) for s in data.ids(ids)]


def _embed(embedder, images: list[np.ndarray], batch: int = 16) -> np.ndarray:
    return np.concatenate([embedder.embed(images[i : i + batch]) for i in range(0, len(images), batch)])


def select_round(strategy: str, data, n: int, labeled: list[str], seed: int, model: Path | None,
                 folder: Path) -> list[str]:
    """A round's training ids: ``labeled`` (the previous round's; none in round 1) and as many more
    from the rest of the pool as make ``n``, chosen with ``model`` (the previous round's segmenter;
    in round 1 the method's start checkpoint, or None)."""

    saved = folder / SELECTION
    if saved.is_file():
        return saved_ids(folder)
    pool = list(data.split.train)
    have = set(labeled)
    ok = np.array([i not in have for i in pool])
    rng = np.random.default_rng(seed)
    first_round = not labeled
    if strategy == "random" or (first_round and strategy != "diverse"):
        new = [pool[i] for i in rng.choice(np.flatnonzero(ok), n - len(labeled), replace=False)]
    else:
        images = _images(data, pool)
        embedder = Embedder(model)
        emb = _embed(embedder, images)
        cands = [Candidate(i, i, -1, None) for i in pool]
        if first_round:  # diverse, before any label: k-center from a seeded first frame
            start = int(rng.integers(len(pool)))
            ok[start] = False
            new = [pool[start]] + [pool[i] for i, _, _ in choose("diverse", n - 1, emb, cands, seed,
                                                                   centers=emb[[start]], available=ok)]
        else:
            u = None
            if strategy in ("uncertain", "hybrid"):
                u = np.concatenate([embedder.uncertainty(images[i : i + 16])[0] for i in range(0, len(images), 16)])
            centers = emb[~ok] if strategy in ("diverse", "hybrid") else None
            new = [pool[i] for i, _, _ in choose(strategy, n - len(labeled), emb, cands, seed, uncertainty=u,
                                                 centers=centers, available=ok)]
    ids = list(labeled) + new
    atomic_write_text(saved, json.dumps({"strategy": strategy, "labels": n, "ids": ids, "added": new,
                                         "chosen_with": str(model) if model else None}, indent=1))
    return ids


def select(strategy: str, data, fraction: str, subset: int, seed: int, init: Path | None, folder: Path,
           round_one: Callable[[list[str], Path], Path]) -> list[str]:
    """The training ids of a cell (see the module docstring). ``round_one(ids, folder)`` fine-tunes
    on ``ids`` and returns the best checkpoint (used by ``uncertain`` and ``hybrid``)."""

    random_ids = data.split.subset(fraction, subset)
    if strategy == "random":
        return random_ids
    saved = folder / SELECTION
    if saved.is_file():
        return saved_ids(folder)
    pool, n = list(data.split.train), len(random_ids)
    cands = [Candidate(i, i, -1, None) for i in pool]
    images = _images(data, pool)
    if strategy == "diverse":
        embedder = Embedder(init)
        emb = _embed(embedder, images)
        start = int(np.random.default_rng(seed).integers(len(pool)))
        ok = np.ones(len(pool), bool)
        ok[start] = False
        rest = choose("diverse", n - 1, emb, cands, seed, centers=emb[[start]], available=ok)
        ids = [pool[start]] + [pool[i] for i, _, _ in rest]
        info = {"embedding": str(init) if init else "8x8 Lab thumbnail"}
    else:
        first = random_ids[: max(1, n // 2)]
        model = round_one(first, folder / "round1")
        embedder = Embedder(model)
        emb = _embed(embedder, images)
        u = np.concatenate([embedder.uncertainty(images[i : i + 16])[0] for i in range(0, len(images), 16)])
        ok = np.array([i not in set(first) for i in pool])
        centers = emb[~ok] if strategy == "hybrid" else None
        rest = choose(strategy, n - len(first), emb, cands, seed, uncertainty=u, centers=centers, available=ok)
        ids = first + [pool[i] for i, _, _ in rest]
        info = {"round1": first, "round1_model": str(model)}
    atomic_write_text(saved, json.dumps({"strategy": strategy, "fraction": fraction, "subset": subset,
                                         "ids": ids, **info}, indent=1))
    return ids
