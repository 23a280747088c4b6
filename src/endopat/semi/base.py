"""What a semi-supervised method is: an unlabeled loss on a batch of unlabeled network input, with
an optional teacher kept up to date after every optimiser step, and a generator for its views; its
state (teacher, generator) saved with the run so a resumed run is the same run."""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod

import torch

import endopat.semi.perturb as perturb
from endopat.config import SemiConfig


class SemiMethod(ABC):
    name = ""
    pairs = False  # the unlabeled batch is (frame, a neighbouring frame of the same video)
    uses_teacher = True

    def __init__(self, cfg: SemiConfig, model: torch.nn.Module, seed: int = 0):
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(seed + 7919)
        self.teacher = copy.deepcopy(model).eval() if self.uses_teacher else None
        if self.teacher is not None:
            self.teacher.requires_grad_(False)

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """The unlabeled loss of ``model`` (the student) on a batch of unlabeled network input."""

    # ------------------------------------------------------------------ shared
    def weight(self, step: int) -> float:
        """The sigmoid ramp-up of the unlabeled loss's weight (Laine & Aila 2017)."""
        if self.cfg.ramp_up == 0 or step >= self.cfg.ramp_up:
            return self.cfg.weight
        t = step / self.cfg.ramp_up
        return self.cfg.weight * math.exp(-5 * (1 - t) ** 2)

    @torch.no_grad()
    def after_step(self, model: torch.nn.Module) -> None:
        """The teacher as the exponential moving average of the student (Mean Teacher's update:
        teacher = ema * teacher + (1 - ema) * student, parameters and buffers alike)."""
        if self.teacher is None:
            return
        student = dict(model.named_parameters()) | dict(model.named_buffers())
        for name, t in list(self.teacher.named_parameters()) + list(self.teacher.named_buffers()):
            s = student[name].detach()
            if t.dtype.is_floating_point:
                t.mul_(self.cfg.ema).add_(s, alpha=1 - self.cfg.ema)
            else:
                t.copy_(s)

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's class probabilities on ``x``."""
        return torch.softmax(self.teacher(x).float(), dim=1)

    def strong(self, x: torch.Tensor) -> torch.Tensor:
        """The student's view: colour jitter, then blur."""
        s = self.cfg.strong
        return perturb.blur(perturb.jitter(x, s.jitter, self.generator), s.blur, self.generator)

    def state_dict(self) -> dict:
        out = {"generator": self.generator.get_state()}
        if self.teacher is not None:
            out["teacher"] = self.teacher.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
