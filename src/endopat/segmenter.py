"""The inference core: a trained segmenter applied to RGB frames of any size.

:class:`Segmenter` loads a checkpoint; ``network_input`` fits frames into the network's size and
converts them to its input (L or Lab); ``forward`` gives the probabilities the predictions need — a
binary model's foreground probability ``(B, 1, H, W)``, a multi-class model's softmax ``(B, C, H, W)``
— and ``full_resolution`` maps them back onto each frame (the model's ``fit`` rule, bilinear).
:func:`class_ids` turns them into a class-id mask (binary: the model's threshold; multi-class: the
most probable class). The ONNX segmenter (:mod:`endopat.export`) shares every step but the network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from endopat.checkpoints import load_checkpoint
from endopat.data.geometry import fit_image, fit_images_on, restore
from endopat.errors import EndopatError, reading
from endopat.labels import Labels
from endopat.networks import build_unet, prepare_input


def class_ids(prob: np.ndarray, labels: Labels, threshold: float = 0.5) -> np.ndarray:
    """A full-resolution probability map -> uint8 class ids ``(h, w)``: binary ``(h, w)`` foreground
    probability at ``threshold``; multi-class ``(C, h, w)`` its arg-max."""
    if labels.is_binary:
        return (prob >= threshold).astype(np.uint8)
    return prob.argmax(0).astype(np.uint8)


def class_shares(ids: np.ndarray, labels: Labels) -> dict[str, float]:
    """Each class's share of the pixels of a class-id map, by class name (rounded to 6 places)."""
    share = np.bincount(ids.ravel(), minlength=labels.num_classes) / ids.size
    return {n: round(float(share[i]), 6) for i, n in enumerate(labels.names)}


def confidence(prob: np.ndarray, labels: Labels) -> np.ndarray:
    """The probability of the predicted class per pixel ``(h, w)``."""
    return np.maximum(prob, 1 - prob) if labels.is_binary else prob.max(0)


def output_probabilities(logits: torch.Tensor, labels: Labels) -> torch.Tensor:
    """Network logits -> what :class:`Segmenter` returns: the foreground probability of a binary
    model ``(B, 1, H, W)``, every class's of a multi-class one ``(B, C, H, W)``."""
    prob = torch.softmax(logits, dim=1)
    return prob[:, 1:2] if labels.is_binary else prob


class Predictor(ABC):
    """What the PyTorch and ONNX segmenters share: preprocessing, full-resolution maps, class ids.
    A subclass sets ``cfg``, ``labels``, ``threshold`` and implements ``forward``."""

    cfg = None
    labels: Labels
    threshold: float = 0.5
    device: torch.device | None = None

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network input -> probabilities (:func:`output_probabilities`)."""

    def network_input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return network_input(self.cfg, images)

    @torch.no_grad()
    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Probability maps at each image's own size: ``(h, w)`` foreground (binary) or ``(C, h, w)``."""
        return full_resolution(self.cfg, self.forward(self.network_input(images)), [im.shape[:2] for im in images])

    def class_ids(self, prob: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return class_ids(prob, self.labels, self.threshold if threshold is None else threshold)

    def predict_ids(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Class-id masks ``(h, w)`` uint8 at each image's own size."""
        return [self.class_ids(p) for p in self.probabilities(images)]


class Segmenter(Predictor):
    """A loaded segmenter checkpoint: ``probabilities(rgb)`` for RGB uint8 images of any size."""

    def __init__(self, path: str | Path, device: str = "cpu", preprocess: str = "auto"):
        """``preprocess``: where frames are fitted and converted to Lab: ``host`` (PIL, numpy),
        ``device`` (on the network's device) or ``auto`` (device on a GPU, host on a CPU)."""
        ckpt = load_checkpoint(path)
        if ckpt.kind != "segmenter":
            raise EndopatError(f"{path}: a '{ckpt.kind}' checkpoint, not a segmenter; fine-tune it first")
        self.cfg, self.labels, self.threshold = ckpt.model, ckpt.labels, ckpt.threshold
        self.device = torch.device(device)
        self.model = build_unet(self.cfg, out_channels=self.labels.num_classes)
        with reading(path, "endopat checkpoint"):  # weights that do not fit its own model: one line
            self.model.load_state_dict(ckpt.state_dict)
        self.model.to(self.device).eval()
        self.checkpoint = ckpt
        self.on_device = preprocess == "device" or (preprocess == "auto" and self.device.type == "cuda")

    def network_input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images of any size -> the network's input batch, where ``preprocess`` says."""
        return network_input(self.cfg, images, self.device if self.on_device else None)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network input -> probabilities (:func:`output_probabilities`)."""
        return output_probabilities(self.model(x.to(self.device)).float(), self.labels)


def network_input(cfg, images: Sequence[np.ndarray], device: torch.device | None = None) -> torch.Tensor:
    """RGB uint8 images of any size -> the network's input batch (fitted, Lab, normalised); on
    ``device`` when given (fitted there too: :func:`endopat.data.geometry.fit_images_on`)."""
    size = tuple(cfg.image_size)
    if device is not None:
        return prepare_input(fit_images_on(images, size, cfg.fit, device), cfg.input)
    return prepare_input(torch.from_numpy(np.stack([fit_image(im, size, cfg.fit) for im in images])), cfg.input)


def full_resolution(cfg, prob: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Network-sized probabilities ``(B, C, H, W)`` -> one map per image at its size: ``(h, w)`` when
    ``C`` is 1 (a binary model's foreground), ``(C, h, w)`` otherwise."""
    maps = [restore(p, hw, cfg.fit).cpu().numpy() for p, hw in zip(prob, shapes)]
    return [m[0] if len(m) == 1 else m for m in maps]
