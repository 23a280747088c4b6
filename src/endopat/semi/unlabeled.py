"""The unlabeled frames semi-supervised fine-tuning draws: a frame store (decoded once, at the
network's size: :func:`endopat.data.frames.build_store`), sampled by a generator the run saves,
so a resumed run draws the same frames. For temporal methods each draw is a pair: a frame and the
one ``gap`` frames later in the store, from the same video (a store lists its frames per source
file in order; image files are grouped into videos by their stem, as the labeled readers do)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from endopat.data.store import FrameStore
from endopat.data.labeled import group_of
from endopat.errors import EndopatError
from endopat.io import IMAGE_SUFFIXES
from endopat.networks import prepare_input


def videos(store: FrameStore) -> np.ndarray:
    """The video of every frame of ``store`` (an id per frame)."""
    ids, names = [], {}
    for source in store.meta.get("sources", []):
        path = Path(source["path"])
        key = group_of(path.stem) if path.suffix.lower() in IMAGE_SUFFIXES else str(path)
        ids += [names.setdefault(key, len(names))] * int(source["frames"])
    if len(ids) != len(store):
        return np.zeros(len(store), int)  # a store without per-source counts: one video
    return np.array(ids)


def pair_starts(vid: np.ndarray, gap: int) -> np.ndarray:
    """The frames whose frame ``gap`` later is of the same video (``vid``: each frame's video)."""
    return np.flatnonzero(vid[:-gap] == vid[gap:]) if len(vid) > gap else np.array([], int)


# at or above this, a source's pairs are no more alike than random frames of one video (its
# frames are sparse samples): temporal consistency's small-motion premise does not hold there
NOT_NEIGHBOURS = 0.9


def neighbour_likeness(store: FrameStore, gap: int, pairs: int = 256, seed: int = 0) -> float | None:
    """How alike the frames ``gap`` apart of one video are, against any two frames of one video:
    the mean absolute grey difference of the first over that of the second. Near 1: neighbours are
    no more alike than random frames (sparse samples of a surgery: EndoVis15's dev frames 0.94-0.96,
    Endoscapes-Seg50's, 30 s apart, 0.97); small: small motion, what temporal consistency assumes
    (CholecSeg8k's consecutive frames at 25 fps: 0.21; bench/pair_likeness.py). None when no video
    holds a pair. Drawn with a generator of its own: the run's draws are untouched."""
    vid = videos(store)
    starts = pair_starts(vid, gap)
    if len(starts) == 0:
        return None
    rng = np.random.default_rng(seed)
    grey = lambda i: store[int(i)].astype(np.float32).mean(-1)  # noqa: E731
    first = rng.choice(starts, min(pairs, len(starts)), replace=False)
    near = np.mean([np.abs(grey(i) - grey(i + gap)).mean() for i in first])
    anchor = rng.choice(starts, pairs)  # from videos with a pair, with replacement: ``pairs`` random pairs
    other = [rng.choice(np.flatnonzero((vid == vid[i]) & (np.arange(len(vid)) != i))) for i in anchor]
    far = np.mean([np.abs(grey(i) - grey(j)).mean() for i, j in zip(anchor, other)])
    return float(near / far) if far > 0 else None


class Unlabeled:
    def __init__(self, store: FrameStore, model_input: str, batch_size: int, gap: int | None, seed: int = 0):
        self.store, self.input, self.batch_size, self.gap = store, model_input, batch_size, gap
        self.generator = torch.Generator().manual_seed(seed + 104729)
        if gap is None:
            self.starts = np.arange(len(store))
        else:
            self.starts = pair_starts(videos(store), gap)
        if len(self.starts) == 0:
            raise EndopatError(f"{store.root}: no unlabeled frames" + (f" with a frame {gap} later in the same video "
                                                                       "(temporal pairs)" if gap else ""))

    def _input(self, idx: np.ndarray) -> torch.Tensor:
        return prepare_input(torch.from_numpy(np.stack([self.store[int(i)] for i in idx])), self.input)

    def draw(self) -> np.ndarray:
        """The store indices of the next batch (of each pair's first frame)."""
        return self.starts[torch.randint(len(self.starts), (self.batch_size,), generator=self.generator).numpy()]

    def next(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The next batch of network input: frames, or (frames, the frames ``gap`` later)."""
        pick = self.draw()
        if self.gap is None:
            return self._input(pick)
        return self._input(pick), self._input(pick + self.gap)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
