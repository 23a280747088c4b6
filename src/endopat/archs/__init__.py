"""The architectures, one module per family, and their registry: the one place that names them.

Adding an architecture: a module that makes :class:`~endopat.archs.base.Arch` entries (a builder,
its encoder levels, its first layer and module groups), and one line below. ``model.arch``, the
CLI's ``--arch``, encoder weights and every task then know it (``tests/test_archs.py`` registers
a toy one and pretrains and fine-tunes it).
"""

from __future__ import annotations

from endopat.archs import basic_unet, caformer, convnext, flexible, pvt_v2, vit, vit_dinov3
from endopat.archs.base import Arch

ARCHS: dict[str, Arch] = {a.name: a for a in (basic_unet.ARCH, *flexible.ARCHS, *vit.ARCHS, *vit_dinov3.ARCHS,
                                                *convnext.ARCHS, pvt_v2.ARCH, *caformer.ARCHS)}
DEFAULT_ARCH = "basic_unet"

__all__ = ["ARCHS", "Arch", "DEFAULT_ARCH", "arch_list"]


def arch_list(with_weights: bool = False) -> str:
    """The registered names, for help texts and errors (``with_weights``: those with encoder weights)."""
    return ", ".join(n for n, a in ARCHS.items() if a.weights_layouts or not with_weights)
