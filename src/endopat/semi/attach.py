"""A semi-supervised method attached to a fine-tuning run: its unlabeled frames (a frame store built
once in the run folder) and its state, both registered with the run so a resumed run continues them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from endopat.config import FinetuneConfig
from endopat.data.frames import build_store
from endopat.errors import EndopatError
from endopat.networks import arch_of
from endopat.runtime import TrainingRun
from endopat.semi import SEMI
from endopat.semi.unlabeled import NOT_NEIGHBOURS, Unlabeled, neighbour_likeness


@dataclass
class SemiRun:
    """Semi-supervised fine-tuning's parts: the method, its unlabeled frames, the plain network
    (whose parameters the teacher follows)."""

    method: Any
    unlabeled: Any
    net: torch.nn.Module


def attach(cfg: FinetuneConfig, net: torch.nn.Module, run: TrainingRun) -> SemiRun | None:
    """The semi-supervised method of ``cfg.semi`` with its frame store (built once in the run folder,
    reused on resume), both registered with the run so a resumed run continues their state."""
    if cfg.semi is None:
        return None
    if not cfg.semi.unlabeled:
        raise EndopatError(f"semi {cfg.semi.method}: no unlabeled frames (semi.unlabeled, or --unlabeled)")
    store = build_store(cfg.semi.unlabeled, run.out / "unlabeled", tuple(cfg.model.image_size), fps=cfg.semi.fps,
                        fit=cfg.model.fit, log=lambda *a: None)
    cls = SEMI[cfg.semi.method]
    extra = {}
    if cls.name == "fixmatch":  # UniMatch's feature perturbation on the deepest encoder module
        extra["deepest"] = dict(net.named_children())[arch_of(cfg.model).modules(["encoder"])[-1]]
    method = run.track("semi", cls(cfg.semi, net, cfg.seed, **extra))
    unlabeled = run.track("unlabeled", Unlabeled(store, cfg.model.input, cfg.semi.batch_size,
                                                 cfg.semi.gap if cls.pairs else None, cfg.seed))
    run.log(f"semi-supervised: {cls.name} on {len(store)} unlabeled frames of {cfg.semi.unlabeled}")
    if cls.pairs and (likeness := neighbour_likeness(store, cfg.semi.gap)) is not None:
        gap = f"{cfg.semi.gap} frame{'s' if cfg.semi.gap > 1 else ''}"
        run.log(f"{cls.name} pairs {gap} apart: they differ {likeness:.2f}x as much as any two frames of one video"
                + (LIKENESS_WARNING if likeness >= NOT_NEIGHBOURS else ""))
    return SemiRun(method, unlabeled, net)


LIKENESS_WARNING = (" - warning: no more alike than random frames, so the pseudo-label from one is not this one's "
                    "(temporal consistency assumes small motion): a denser source (a video, or `endopat frames` "
                    "at a higher --fps) or a smaller semi.gap")
