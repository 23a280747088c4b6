"""FixMatch for segmentation as UniMatch trains it (Sohn et al., NeurIPS 2020; Yang et al., CVPR
2023): the model's own prediction on the weak view (the frame as it is) is the pseudo-label where
it is confident; the model learns it on a strong view (jitter, blur, CutMix with another frame,
the pseudo-label mixed alike) and on a feature-perturbed stream (channel dropout on the deepest
encoder features), the two losses averaged."""

from __future__ import annotations

import torch

from endopat import losses
from endopat.semi import perturb
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
        loss = losses.pseudo_label(model(strong).float(), perturb.mix(target, box, partner), self.cfg.threshold)
        if self.dropout is None or self.cfg.strong.feature_dropout == 0:
            return loss
        self.dropout.active = True
        try:
            fp = losses.pseudo_label(model(batch).float(), target, self.cfg.threshold)
        finally:
            self.dropout.active = False
        return 0.5 * (loss + fp)
