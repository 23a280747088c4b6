"""What an auxiliary task is to the pretraining loop (:func:`endopat.pretrain.pretrain`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from endopat.data.store import FrameDataset
from endopat.encoder_weights import load_encoder_weights
from endopat.io import file_digest
from endopat.networks import build_unet


class Task(ABC):
    """One auxiliary task. A subclass owns everything specific to it:

    * ``Settings``: its pydantic settings, the ``pretrain.<name>`` section of a config;
    * ``__init__``: the networks and optimizers it trains, registered with ``run.setup`` so that
      resume, checkpoints and multi-GPU follow without more code;
    * ``step``: one training step on a batch of frames, returning the scalars it logs (``fields``);
    * ``samples``: its sample figure (a PNG of what it does to a few fixed frames);
    * ``unet``, ``in_channels``, ``reinit``: the U-Net it hands to fine-tuning, the channels that
      U-Net sees, and the modules fine-tuning re-initialises (weights that mean nothing for
      segmentation: the task's own output layer, or a decoder the task never trained).
    """

    name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]
    fields: ClassVar[list[str]]
    reinit: ClassVar[tuple[str, ...]] = ("last",)  # module groups or names (networks.Arch.modules)
    reference: ClassVar[str] = ""
    figure: ClassVar[str] = ""  # what the rows of the sample figure show

    def __init__(self, cfg: Any, run: Any, store: Any) -> None:
        self.cfg, self.run, self.store = cfg, run, store
        self.settings = cfg.options(self.name)

    @property
    def in_channels(self) -> int:
        """Channels of the U-Net's input: the segmenter's own (L or Lab) unless the task says otherwise."""
        return self.cfg.model.in_channels

    def dataset(self, store: Any) -> torch.utils.data.Dataset:
        """What the loader draws from the frame store: single frames ``(H, W, 3)`` by default."""

        return FrameDataset(store)

    @abstractmethod
    def step(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training step on a batch of ``dataset`` (RGB uint8 frames ``(B, H, W, 3)`` by
        default); returns the logged scalars."""

    @abstractmethod
    def samples(self, frames: torch.Tensor, path: Path) -> None:
        """Write the sample figure for RGB uint8 frames ``(B, H, W, 3)`` to ``path``."""

    @abstractmethod
    def unet(self) -> nn.Module:
        """The plain U-Net handed to fine-tuning."""

    def build_unet(self, in_channels: int | None = None, out_channels: int = 2) -> nn.Module:
        """A fresh U-Net of ``cfg.model``, its encoder loaded from ``cfg.encoder_weights`` when set
        (re-colorization from ImageNet); what loaded is logged and kept for the provenance."""

        net = build_unet(self.cfg.model, in_channels, out_channels)
        if self.cfg.encoder_weights:
            report = load_encoder_weights(net, self.cfg.model, self.cfg.encoder_weights, self.cfg.encoder_norm)
            self._weights = report.provenance(file_digest(self.cfg.encoder_weights))
            for line in report.lines():
                self.run.log(line)
        return net

    def provenance(self) -> dict[str, Any]:
        """What the task adds to the checkpoint's provenance (e.g. measured loss weights)."""
        return {}

    def base_provenance(self) -> dict[str, Any]:
        """Provenance every task has: the encoder weights it started from, if any."""
        return {"encoder_weights": self._weights} if getattr(self, "_weights", None) else {}

    def describe(self, row: dict[str, float]) -> str:
        """The progress bar's text for a logged row."""
        return " ".join(f"{k} {row[k]:.3f}" for k in self.fields[:3])
