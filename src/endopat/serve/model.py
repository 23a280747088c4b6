"""The served segmenter: predictions with a confidence score, and an atomic swap to a retrained
checkpoint that bumps the model version. What is served survives a restart: ``STATE/current.json``
(written atomically after a swap) names the checkpoint and its version."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, Field

from endopat.errors import EndopatError
from endopat.io import atomic_write_text, read_record
from endopat.labels import Labels
from endopat.predict import load_model
from endopat.segmenter import confidence

CURRENT = "current.json"  # what a server serves: read back when it restarts


class _Served(BaseModel):
    checkpoint: str
    version: int = Field(ge=1)


@dataclass
class Prediction:
    mask: np.ndarray  # (H, W) uint8 class ids at the image's own size (binary: 1 = instrument)
    score: float  # mean per-pixel confidence (the predicted class's probability): low where the model hesitates


class ServedModel:
    """One checkpoint at a time, read by any number of request threads, replaced by :meth:`swap`."""

    def __init__(self, checkpoint: str | Path, state: Path, backend: str = "auto"):
        self.state, self.backend = state, backend
        self._lock = threading.Lock()
        saved = state / CURRENT
        if saved.is_file():  # a restarted server serves what it served, not the command line's start
            info = read_record(saved, "served-model state", _Served)
            checkpoint, self.version = info.checkpoint, info.version
            if not Path(checkpoint).is_file():
                raise EndopatError(f"{saved}: the server served {checkpoint}, which is gone; put it back, or "
                                   f"move {saved} away to serve the command line's checkpoint")
        else:
            self.version = 1
        self.checkpoint = Path(checkpoint)
        self._model = load_model(self.checkpoint, backend=backend)

    @property
    def labels(self) -> Labels:
        return self._model.labels

    @property
    def model_version(self) -> str:
        return f"endopat-v{self.version}"

    def predict(self, images: Sequence[np.ndarray]) -> tuple[list[Prediction], str]:
        with self._lock:  # the model and its version are read together
            model, version = self._model, self.model_version
        out = []
        for prob in model.probabilities(list(images)):
            out.append(Prediction(model.class_ids(prob), float(confidence(prob, model.labels).mean())))
        return out, version

    def swap(self, checkpoint: Path) -> str:
        """Serve ``checkpoint`` from now on (loaded before the switch, so no request waits)."""
        model = load_model(checkpoint, backend=self.backend)
        with self._lock:
            self._model, self.checkpoint, self.version = model, Path(checkpoint), self.version + 1
            atomic_write_text(self.state / CURRENT, json.dumps({"checkpoint": str(checkpoint), "version": self.version}))
            return self.model_version
