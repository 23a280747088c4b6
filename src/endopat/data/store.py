"""A frame store read back: ``store[i]`` is frame ``i`` as an ``(H, W, 3)`` uint8 array, from a flat
file opened with ``np.memmap`` (the format and why: :mod:`endopat.data.frames`, which builds it).

``store.json`` is read typed (:class:`StoreMeta`): whatever its bytes, one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field, PositiveInt, with_config
from typing_extensions import NotRequired, TypedDict

from endopat.errors import EndopatError
from endopat.io import read_record

STORE_META = "store.json"
STORE_DATA = "frames.u8"


class StoreSource(TypedDict):
    path: str
    frames: Annotated[int, Field(ge=0)]


@with_config(ConfigDict(extra="allow"))
class StoreMeta(TypedDict):
    """``store.json``: the keys a store's readers use, checked; the build settings kept as written."""

    count: PositiveInt
    height: PositiveInt
    width: PositiveInt
    kind: NotRequired[Literal["images", "videos"]]
    sources: NotRequired[list[StoreSource]]


def is_store(path: Path) -> bool:
    return (path / STORE_META).is_file() and (path / STORE_DATA).is_file()


class FrameStore:
    """Read-only random access to a frame store: ``store[i]`` is an ``(H, W, 3)`` uint8 array."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not is_store(self.root):
            raise EndopatError(f"{self.root}: not a frame store (no {STORE_META} + {STORE_DATA})")
        self.meta: StoreMeta = read_record(self.root / STORE_META, "frame store", StoreMeta)
        self.shape = (self.meta["count"], self.meta["height"], self.meta["width"], 3)
        size = (self.root / STORE_DATA).stat().st_size
        if size != int(np.prod(self.shape)):
            raise EndopatError(f"{self.root / STORE_DATA}: {size} bytes, not "
                               f"the {self.shape[0]} frames of {self.shape[1]}x{self.shape[2]} RGB that "
                               f"{STORE_META} names (rebuild the store with `endopat frames`)")
        self._data: np.memmap | None = None

    @property
    def data(self) -> np.memmap:
        if self._data is None:  # opened lazily so the store pickles cheaply into loader workers
            self._data = np.memmap(self.root / STORE_DATA, dtype=np.uint8, mode="r", shape=self.shape)
        return self._data

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array(self.data[i])  # a writable copy

    @property
    def size(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]


class FrameDataset(torch.utils.data.Dataset):
    """A frame store as a dataset of ``(H, W, 3)`` uint8 tensors (a task's default)."""

    def __init__(self, store: FrameStore):
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store[i])
