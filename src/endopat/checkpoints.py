"""Self-describing checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint is a plain dict of tensors, strings and numbers::

    format: "endopat"          format_version: 1          endopat_version: "0.1.0"
    kind: "pretrained" | "segmenter"    ("colorizer": a re-colorization checkpoint of endopat < 0.2)
    task: the auxiliary task that pretrained it (pretrained checkpoints)
    in_channels: the channels the U-Net's first layer takes (1: L only, 3: Lab)
    reinit: the modules fine-tuning re-initialises (pretrained checkpoints)
    model: ModelConfig as a dict (architecture, input channels, image size)
    preprocess: how to turn an RGB image into the network input
    threshold: foreground probability threshold (segmenters)
    provenance: what it was trained from (sources, steps, init checkpoint, ...)
    state_dict: the U-Net's weights (no wrapper prefix)

Nothing in it is pickled code, so a checkpoint from an untrusted source cannot run anything; one
that holds pickled objects is refused with a clear error.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from endopat import __version__
from endopat.config import ModelConfig
from endopat.errors import EndopatError, describe, reading, validation_message
from endopat.io import atomic_path
from endopat.labels import Labels
from endopat.archs.vit import resize_pos_embed
from endopat.networks import reset_modules

FORMAT = "endopat"
FORMAT_VERSION = 1
PREPROCESS = {
    "colour_space": "CIE Lab (kornia, D65)",
    "normalisation": "L_n = L/50 - 1, ab_n = ab/128",
    "resize": "bilinear into image_size by the model's fit rule (masks: nearest)",
}


def save_atomic(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_weights_only(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: checkpoint not found")
    with reading(path, "checkpoint"):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            if "Unsupported global" not in str(err) and "GLOBAL" not in str(err):
                raise  # broken bytes, not a pickled object: the catch-all says so
            raise EndopatError(
                f"{path}: refused: the file holds pickled Python objects, not only weights "
                f"(endopat loads checkpoints with weights_only=True) [{describe(err)}]"
            ) from None


def make_checkpoint(
    kind: str,
    model_cfg: ModelConfig,
    state_dict: dict[str, torch.Tensor],
    provenance: dict[str, Any] | None = None,
    threshold: float = 0.5,
    task: str | None = None,
    in_channels: int | None = None,
    reinit: tuple[str, ...] | list[str] = (),
    labels: dict | None = None,
) -> dict[str, Any]:
    """The checkpoint dictionary; ``labels``: a segmenter's classes (:meth:`endopat.labels.Labels.to_dict`)."""
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "endopat_version": __version__,
        "kind": kind,
        "model": model_cfg.model_dump(mode="json"),
        "preprocess": _preprocess(model_cfg),
        "threshold": float(threshold),
        "provenance": provenance or {},
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "in_channels": int(in_channels if in_channels is not None else model_cfg.in_channels),
    }
    if task is not None:
        ckpt.update(task=task, reinit=list(reinit))
    if labels is not None:
        ckpt["labels"] = labels
    return ckpt


def save_checkpoint(path: str | Path, **kwargs: Any) -> Path:
    save_atomic(make_checkpoint(**kwargs), path)
    return Path(path)


def _preprocess(model_cfg: ModelConfig) -> dict[str, Any]:
    return dict(PREPROCESS, input=model_cfg.input, image_size=list(model_cfg.image_size), fit=model_cfg.fit)


class _Header(BaseModel):
    """Every field of a checkpoint but its weights, as :func:`make_checkpoint` writes it; the
    defaults are what checkpoints of older endopat versions lack."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    format_version: int = Field(ge=0)
    endopat_version: str = "unknown"
    kind: Literal["pretrained", "segmenter", "colorizer"]
    task: str | None = None
    reinit: list[str] = []
    model: ModelConfig
    in_channels: int | None = Field(None, ge=1, le=4096)
    preprocess: dict[str, Any] | None = None
    threshold: float = Field(0.5, ge=0, le=1, allow_inf_nan=False)
    provenance: dict[str, Any] = {}
    labels: dict[str, Any] | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint, each field checked and typed once, where it is read
    (:func:`load_checkpoint`); the module docstring says what each holds."""

    path: Path
    kind: str
    model: ModelConfig
    labels: Labels
    state_dict: dict[str, torch.Tensor]
    in_channels: int
    threshold: float = 0.5
    task: str | None = None
    reinit: tuple[str, ...] = ()
    preprocess: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    endopat_version: str = "unknown"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """An endopat checkpoint, whatever the file's bytes: a damaged or foreign file, a field of the
    wrong type or a newer format is one line naming the file."""
    ckpt = load_weights_only(path)
    with reading(path, "endopat checkpoint"):
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
            raise EndopatError(f"{path}: not an endopat checkpoint (no 'format: endopat' header)")
        try:
            head = _Header.model_validate({k: v for k, v in ckpt.items() if k != "state_dict"})
        except ValidationError as err:
            raise EndopatError(f"{path}: not a valid endopat checkpoint: {validation_message(err)}") from None
        if head.format_version > FORMAT_VERSION:
            raise EndopatError(
                f"{path}: checkpoint format {head.format_version} is newer than this endopat "
                f"understands ({FORMAT_VERSION}); upgrade endopat"
            )
        state = ckpt["state_dict"]
        if not isinstance(state, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise EndopatError(f"{path}: not an endopat checkpoint (its weights are malformed)")
        return Checkpoint(
            path=Path(path), kind=head.kind, model=head.model, labels=Labels.from_dict(head.labels, str(path)),
            state_dict=state, in_channels=head.in_channels or head.model.in_channels, threshold=head.threshold,
            task=head.task, reinit=tuple(head.reinit), preprocess=head.preprocess or _preprocess(head.model),
            provenance=head.provenance, endopat_version=head.endopat_version)


def unet_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The U-Net weights of a segmenter or a :class:`~endopat.networks.Colorizer`, unprefixed."""
    unet = getattr(module, "unet", module)
    return unet.state_dict()


@dataclass
class InitReport:
    """What :func:`init_from` did with each tensor of the target model."""

    loaded: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    inflate: str = "zero"
    resized: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"loaded {len(self.loaded)} tensors from the init checkpoint"]
        if self.inflated:
            ab = "a/b kernels zero" if self.inflate == "zero" else "a/b kernels freshly initialised"
            out.append(f"inflated (L kernel copied, {ab}): " + ", ".join(self.inflated))
        if self.resized:
            out.append("position embeddings resized to this token grid (bicubic): " + ", ".join(self.resized))
        if self.reinitialised:
            modules = dict.fromkeys(k.split(".")[0] for k in self.reinitialised)
            out.append(f"re-initialised ({len(self.reinitialised)} tensors): " + ", ".join(modules))
        for k, why in self.skipped.items():
            out.append(f"not loaded: {k} ({why})")
        return out


def init_from(
    model: nn.Module, source: dict[str, torch.Tensor], reinit: tuple[str, ...] = ("final_conv",),
    first_layer: str | tuple[str, ...] = "conv_0.conv_0.conv.weight", source_grid: tuple[int, int] | None = None,
    inflate: str = "zero",
) -> InitReport:
    """Copy every compatible tensor of ``source`` into ``model`` (a U-Net), in place.

    The submodules named in ``reinit`` are re-initialised instead: by default the last layer (the
    paper's fine-tuning rule); ``()`` keeps everything (segmenter -> segmenter). A first
    convolution (``first_layer``, or each of several that see the input) pretrained on L only is
    inflated to an L/a/b input (L kernel kept, a/b zero; ``inflate="fresh"``: a/b keep the model's
    own initialisation). A ViT's position embeddings of another
    token grid (``source_grid``, the checkpoint's) are resized to this network's.
    Tensors missing from ``source`` or of another shape keep their fresh initialisation and are
    reported.
    """

    report = InitReport(inflate=inflate)
    first_layer = (first_layer,) if isinstance(first_layer, str) else first_layer
    prefixes = tuple(name + "." for name in reinit)
    target = model.state_dict()
    new_state = {}
    for key, tensor in target.items():
        if key.startswith(prefixes) and prefixes:
            continue
        src = source.get(key)
        if src is None:
            report.skipped[key] = "not in the init checkpoint"
        elif src.shape == tensor.shape:
            new_state[key] = src
            report.loaded.append(key)
        elif key.endswith("pos_embed") and src.shape[0::2] == tensor.shape[0::2]:  # a ViT of another grid
            new_state[key] = resize_pos_embed(src, model.get_submodule(key.rsplit(".", 1)[0]).grid, source_grid)
            report.resized.append(key)
        elif key in first_layer and src.shape[1] == 1 and src.shape[0] == tensor.shape[0]:
            inflated = torch.zeros_like(tensor) if inflate == "zero" else tensor.clone()
            inflated[:, :1] = src
            new_state[key] = inflated
            report.inflated.append(key)
        else:
            report.skipped[key] = f"shape {tuple(src.shape)} != {tuple(tensor.shape)}"
    model.load_state_dict(new_state, strict=False)
    if reinit:
        report.reinitialised = reset_modules(model, reinit)
    unused = sorted(set(source) - set(target))
    for key in unused:
        report.skipped[key] = "not in this model"
    return report
