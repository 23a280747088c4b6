"""FixMatch for segmentation with UniMatch's perturbations (Sohn et al., NeurIPS 2020; Yang et al.,
CVPR 2023): the model's own prediction on the weak view (the frame as it is) is the pseudo-label
where it is confident; the model learns it on a strong view (jitter, blur, CutMix with another
frame, the pseudo-label mixed alike) whose deepest encoder features also pass channel dropout.
``strong.feature_stream`` instead gives the feature perturbation UniMatch's own stream on the plain
frame, the two losses averaged (one more forward and backward)."""

from __future__ import annotations

import torch

from endopat import losses
import endopat.semi.perturb as perturb
from endopat.semi.base import SemiMethod


class FixMatch(SemiMethod):
    name = "fixmatch"
    uses_teacher = False  # the pseudo-labels come from the model itself, without gradient

    def __init__(self, cfg, model, seed: int = 0, deepest: torch.nn.Module | None = None):
        super().__init__(cfg, model, seed)
        self.dropout = perturb.FeatureDropout(deepest, cfg.strong.feature_dropout) if deepest is not None else None

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = torch.softmax(model(batch).float(), dim=1)
        box, partner = perturb.cutmix_boxes(batch, self.cfg.strong.cutmix, self.generator)
        strong = perturb.mix(self.strong(batch), box, partner)
        separate = self.cfg.strong.feature_stream
        loss = self._stream(model, strong, perturb.mix(target, box, partner), dropout=not separate)
        if not separate:
            return loss
        return 0.5 * (loss + self._stream(model, batch, target, dropout=True))

    def _stream(self, model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, dropout: bool) -> torch.Tensor:
        """The pseudo-label loss of one stream, with the feature dropout on or off."""
        if self.dropout is not None:
            self.dropout.active = dropout
        try:
            return losses.pseudo_label(model(x).float(), target, self.cfg.threshold)
        finally:
            if self.dropout is not None:
                self.dropout.active = False
