"""The machine a run was computed on, as its records keep it (a study's ``cell.json`` and ``done.json``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import torch


def machine() -> dict[str, str]:
    """What a run's numbers depend on besides the code, its config and its seeds: the device, the
    CPU kernels torch dispatches to, and the versions of the libraries that compute or decode.
    Results are bit-identical only where all of these are equal (docs/design.md, "Resume")."""
    info = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "cpu": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
    for package in ("numpy", "pillow", "monai", "kornia", "scipy", "av"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "-"
    return info
