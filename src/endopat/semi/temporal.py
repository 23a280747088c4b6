"""Temporal consistency between neighbouring frames of one surgery (after Zhao et al., MICCAI
2020, without their motion flow): the EMA teacher's confident prediction on a frame ``gap`` frames
away is the pseudo-label of the student's strong view of this frame. Small motion between the two
is assumed; the confidence threshold leaves out the pixels where it does not hold best."""

from __future__ import annotations

import torch

from endopat import losses
from endopat.semi.base import SemiMethod


class Temporal(SemiMethod):
    name = "temporal"
    pairs = True

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        frame, neighbour = batch
        return losses.pseudo_label(model(self.strong(frame)).float(), self.target(neighbour), self.cfg.threshold)
