"""What the rest of endopat needs to know about an architecture (:class:`Arch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Arch:
    """An architecture of the U-Net that re-colorization trains and fine-tuning segments with.

    ``build(cfg, in_channels, out_channels)`` makes it (``cfg``: :class:`endopat.config.ModelConfig`);
    ``levels(net, x)`` runs its encoder alone and returns every level's output, deepest last;
    ``bottleneck(cfg)`` is the channels of that deepest level. ``first_layer`` (the first
    convolution's weight, inflated from L to Lab and made from RGB weights) and ``stem_norm`` (the
    batch norm after it) are state-dict names; ``groups`` name its top-level modules ``encoder``,
    ``decoder`` and ``last`` (what fine-tuning re-initialises after a pretext task); image sides must
    be multiples of ``multiple``; ``weights_layouts`` are the published key layouts its encoder
    weights come in (:mod:`endopat.encoder_weights`; empty when there are none). The first layer's
    input offset is folded into ``stem_norm``'s running mean (a convolution without bias before a
    batch norm) or, when that is empty, into the bias ``stem_bias``. ``patch`` is a transformer's
    patch side (its token grid), None for a convolutional encoder. ``input_layers`` are other
    convolutions that see the image (a decoder's image branch), inflated from L to Lab as the first."""

    name: str
    build: Callable[[Any, int, int], nn.Module]
    levels: Callable[[nn.Module, torch.Tensor], list[torch.Tensor]]
    bottleneck: Callable[[Any], int]
    first_layer: str
    stem_norm: str
    groups: dict[str, tuple[str, ...]]
    multiple: int
    weights_layouts: tuple[str, ...] = ()
    stem_bias: str = ""
    patch: int | None = None
    input_layers: tuple[str, ...] = ()

    def modules(self, names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """Module names with the group names (``encoder``, ``decoder``, ``last``) expanded."""
        out: list[str] = []
        for n in names:
            out += self.groups.get(n, (n,))
        return tuple(dict.fromkeys(out))
