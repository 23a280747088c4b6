"""A video and its per-frame table written in parts, so that a run killed mid-video resumes at its
last whole part instead of at the first frame.

The parts live in a folder of their own beside the result (``run.json`` first: what makes the
result; then ``part_000000.mp4`` and its rows ``part_000000.json``, each written whole, the rows
after the video). A part is kept when its rows and its video are whole and of one length; a rerun
whose ``run.json`` differs (another model, threshold, video) starts again. When the last frame is
in, the parts are joined — the videos remuxed into one without re-encoding, the rows into one CSV —
and, once the caller has recorded the result, removed.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, FiniteFloat

from endopat.data.video import concat_videos, count_packets, write_video
from endopat.io import atomic_write_csv, atomic_write_text, read_cache, remove_leftovers

RECORD = "run.json"


class _Part(BaseModel):
    """One part's table rows (its video beside it holds as many frames)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, FiniteFloat]]  # a NaN (an edit, or a broken model's output): made again


class VideoParts:
    """The parts of one result video in ``folder``; ``run`` says what makes them (JSON-able),
    ``fields`` the table's columns (the first is the frame index), ``size`` the frames of a part."""

    def __init__(self, folder: Path, run: dict[str, Any], fields: Sequence[str], size: int, fps: int,
                 preset: str = "veryfast"):
        self.folder, self.run, self.fields, self.size, self.fps, self.preset = folder, run, list(fields), size, fps, preset
        self.rows: list[dict[str, float]] = []  # the kept parts' rows, in order
        self.parts = 0
        self.complete = False  # the last part (shorter than the others, or empty video) is in
        if read_cache(folder / RECORD, dict[str, Any]) != run:
            return
        while (rows := self._kept(self.parts)) is not None:
            self.rows += rows
            self.parts += 1
            if len(rows) < size:
                self.complete = True
                break

    @property
    def frames(self) -> int:
        """The frames already in kept parts: a rerun starts at this index."""
        return len(self.rows)

    def _path(self, k: int, suffix: str) -> Path:
        return self.folder / f"part_{k:06d}{suffix}"

    def _kept(self, k: int) -> list[dict[str, float]] | None:
        """Part ``k``'s rows when it is whole: rows of the right columns for the frames that follow
        the parts before it, and a video of as many frames; else None (it is made again)."""
        part = read_cache(self._path(k, ".json"), _Part)
        if part is None or not 0 < len(part.rows) <= self.size:
            return None
        first = k * self.size
        if any(list(r) != self.fields or r[self.fields[0]] != first + i for i, r in enumerate(part.rows)):
            return None
        if count_packets(self._path(k, ".mp4")) != len(part.rows):
            return None
        return part.rows

    def write(self, frames: Iterable[tuple[np.ndarray, dict[str, float]]]) -> None:
        """Write ``frames`` — (picture, table row) from frame :attr:`frames` on — as the next parts,
        each whole before the next begins."""
        if self.parts == 0:  # a fresh start: what another run left is not ours to keep
            self._clear()
            atomic_write_text(self.folder / RECORD, json.dumps(self.run, indent=1))
        it = iter(frames)
        while not self.complete:
            rows: list[dict[str, float]] = []
            chunk = itertools.islice(it, self.size)
            first = next(chunk, None)
            if first is None:
                self.complete = True
                break

            def pictures(chunk=itertools.chain([first], chunk), rows=rows) -> Iterator[np.ndarray]:
                for picture, row in chunk:
                    rows.append(row)
                    yield picture

            write_video(self._path(self.parts, ".mp4"), pictures(), fps=self.fps, preset=self.preset)
            # as computed (a broken model's NaN too: this run's table keeps it, a resumed one remakes the part)
            atomic_write_text(self._path(self.parts, ".json"), json.dumps({"rows": rows}))
            self.rows += rows
            self.parts += 1
            self.complete = len(rows) < self.size

    def join(self, video: Path, table: Path) -> int:
        """The parts as one video and one CSV, each written atomically (the parts stay: a kill
        before the caller records the result joins them again); returns the number of frames."""
        n = concat_videos([self._path(k, ".mp4") for k in range(self.parts)], video)
        key = self.fields[0]
        atomic_write_csv(table, self.fields, [{**r, key: int(r[key])} for r in self.rows])
        return n

    def remove(self) -> None:
        """The parts and their folder removed (what else a user put there stays)."""
        self._clear()
        try:
            self.folder.rmdir()
        except OSError:  # something else is there: left as it is
            pass

    def _clear(self) -> None:
        """Remove this folder's parts, record and a killed write's leftovers (nothing else in it)."""
        if not self.folder.is_dir():
            return
        remove_leftovers(self.folder)
        for p in self.folder.iterdir():
            if p.name == RECORD or (p.name.startswith("part_") and p.suffix in (".mp4", ".json")):
                p.unlink()

