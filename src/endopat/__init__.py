"""endopat: Pretraining with an Auxiliary Task (PAT) for endoscopic instrument segmentation.

The heavy submodules (torch, MONAI, kornia) are imported lazily by the functions that need them,
so ``import endopat`` and ``endopat --help`` are instant.
"""

__version__ = "0.1.0"

from endopat.errors import EndopatError  # noqa: E402

__all__ = ["EndopatError", "__version__"]
