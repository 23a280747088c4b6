"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017): the student, on a perturbed view of an
unlabeled frame, is pulled towards the EMA teacher's probabilities on the frame itself."""

from __future__ import annotations

import torch

from endopat import losses
from endopat.semi.base import SemiMethod


class MeanTeacher(SemiMethod):
    name = "mean_teacher"

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return losses.consistency(model(self.strong(batch)).float(), self.target(batch))
