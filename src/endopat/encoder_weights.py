"""Encoder weights from a local file (e.g. ImageNet), mapped onto an encoder U-Net.

Nothing is downloaded. The file is a ``.pth``/``.pt`` (read with ``torch.load(weights_only=True)``)
or a ``.safetensors``, in the key layout the weights are published in:

* ``torchvision-resnet`` (``resnet18/34/50``): torchvision's ``resnet18-f37072fd.pth``,
  ``resnet34-b627a593.pth``, ``resnet50-0676ba61.pth`` (or ``-11ad3fa6``): keys ``conv1.weight``,
  ``bn1.*``, ``layer1.0.conv1.weight``, ..., ``fc.*`` (``fc`` is not used);
* ``efficientnet-pytorch`` (``efficientnet-b0..b4``): the EfficientNet-PyTorch release files MONAI's
  encoders use, ``efficientnet-b0-355c32eb.pth`` ... ``efficientnet-b4-6ed6700e.pth``: keys
  ``_conv_stem.weight``, ``_bn0.*``, ``_blocks.N.*``, ``_conv_head.weight``, ``_bn1.*``, ``_fc.*``.

A ``state_dict``/``model`` wrapper, a ``module.`` prefix (DataParallel) and an ``encoder.`` prefix
(a FlexibleUNet's own state) are unwrapped. Every encoder tensor must be in the file with its
shape, or the file is refused naming what is missing or of another shape; tensors of the file the
encoder has no use for (the classifier) are listed in the report.

**The first convolution** sees RGB normalised with the ImageNet mean m and std s in the published
weights; endopat's networks see normalised L (``L_n = L/50 - 1``) or L/a/b. The rule: treat a grey
pixel of lightness L as the RGB value v = L/100 in every channel (so v = (L_n + 1)/2); the RGB
kernels' response to it is ``sum_c w_c (v - m_c)/s_c``, which is the L kernel ``k_L = sum_c w_c /
(2 s_c)`` applied to L_n plus a constant per output channel ``K = sum_{c, taps} w_c (1/2 - m_c) /
s_c``. The first convolution gets ``k_L`` (and zero a/b kernels for Lab input: colour enters as
the network learns it, as when a generator's L kernel is inflated), and the batch norm right after
it gets its running mean lowered by K, so that on grey input the first block's output equals the
published network's on the ImageNet-normalised image (up to zero padding at the borders). The
normalisation used is stored in the checkpoint's provenance (``encoder_weights``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from endopat.archs import ARCHS, arch_list
from endopat.checkpoints import load_weights_only
from endopat.config import ModelConfig
from endopat.errors import EndopatError
from endopat.networks import build_unet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIONAL = ("num_batches_tracked",)  # not in every published file; a fresh counter is fine
WRAPPERS = ("state_dict", "model", "model_state_dict")
CLASSIFIER = {"torchvision-resnet": ("fc.",), "efficientnet-pytorch": ("_fc.",)}  # unused, expected
# MONAI encoder key -> the published file's key: torchvision's ResNet has the same names; MONAI's
# EfficientNet groups blocks by stage (``_blocks.<stage>.<block>.``), EfficientNet-PyTorch numbers
# them straight through (``_blocks.<block>.``), the mapping MONAI's own loader applies
PUBLISHED_KEY = {
    "torchvision-resnet": lambda k: k,
    "efficientnet-pytorch": lambda k: re.sub(r"^_blocks\.\d+\.(\d+\.)", r"_blocks.\1", k),
}


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file, unwrapped (see above)."""

    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: encoder weights file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors import (
            SafetensorError,  # imported when a .safetensors file is read
        )
        from safetensors.torch import (
            load_file,  # imported when a .safetensors file is read
        )

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise EndopatError(f"{path}: not a readable .safetensors file ({str(err).splitlines()[0]})") from None
    else:
        state = load_weights_only(path)
        for key in WRAPPERS:
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EndopatError(f"{path}: not a file of named tensors (a state dict)")
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "encoder."):
            k = k[len(prefix):] if k.startswith(prefix) else k
        out[k] = v
    return out


@dataclass
class WeightsReport:
    """What :func:`load_encoder_weights` did, for ``init_report.txt``."""

    file: str
    arch: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    stem: str = ""
    unused: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"encoder weights: {self.file} ({self.layout} layout, {self.arch}): "
               f"loaded {len(self.loaded)} tensors", f"first convolution: {self.stem}"]
        if self.fresh:
            out.append(f"kept fresh (not in the file, optional): {len(self.fresh)} counters")
        if self.unused:
            shown = ", ".join(self.unused[:6]) + (" ..." if len(self.unused) > 6 else "")
            out.append(f"not used ({len(self.unused)}): {shown}")
        return out

    def provenance(self, digest: str) -> dict:
        return {"file": self.file, "sha256": digest, "arch": self.arch, "layout": self.layout,
                "rgb_normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
                "first_layer": "RGB kernels folded to L (endopat.encoder_weights)"}


def rgb_stem_to_lab(weight: torch.Tensor, in_channels: int, mean=IMAGENET_MEAN, std=IMAGENET_STD
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB first-layer kernels ``(O, 3, k, k)`` -> (kernels for L or L/a/b input ``(O, C, k, k)``,
    the constant ``K`` per output channel ``(O,)`` the RGB kernels added on grey input)."""
    s = torch.tensor(std, dtype=weight.dtype).view(1, 3, 1, 1)
    m = torch.tensor(mean, dtype=weight.dtype).view(1, 3, 1, 1)
    k_l = (weight / (2 * s)).sum(1, keepdim=True)
    const = (weight * (0.5 - m) / s).sum(dim=(1, 2, 3))
    out = torch.zeros(weight.shape[0], in_channels, *weight.shape[2:], dtype=weight.dtype)
    out[:, :1] = k_l
    return out, const


def load_encoder_weights(model: nn.Module, cfg: ModelConfig, path: str | Path) -> WeightsReport:
    """Copy the encoder weights of ``path`` into ``model`` (a U-Net of ``cfg.arch``), in place."""
    arch = ARCHS[cfg.arch]
    if arch.weights_layout is None:
        raise EndopatError(f"{path}: model.arch {cfg.arch} has no published encoder weights; "
                           f"choose one that has ({arch_list(with_weights=True)})")
    source = read_weights_file(path)
    report = WeightsReport(str(path), cfg.arch, arch.weights_layout)
    target = {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    published = PUBLISHED_KEY[arch.weights_layout]
    stem = arch.first_layer[len("encoder."):]
    norm = arch.stem_norm[len("encoder."):]
    missing, mismatched, new = [], [], {}
    for key, tensor in target.items():
        src = source.get(published(key))
        if src is None:
            (report.fresh if key.endswith(OPTIONAL) else missing).append(key)
        elif key == stem:
            if src.dim() != 4 or src.shape[1] != 3 or src.shape[0] != tensor.shape[0] or src.shape[2:] != tensor.shape[2:]:
                mismatched.append(f"{key} {tuple(src.shape)} vs RGB {(tensor.shape[0], 3, *tensor.shape[2:])}")
            else:
                new[key], const = rgb_stem_to_lab(src.float(), tensor.shape[1])
        elif src.shape != tensor.shape:
            mismatched.append(f"{key} {tuple(src.shape)} vs {tuple(tensor.shape)}")
        else:
            new[key] = src
    if not new:
        raise EndopatError(f"{path}: no tensor matches the {arch.weights_layout} layout of {cfg.arch} "
                           f"(the file's keys look like {', '.join(list(source)[:3])})")
    if mismatched or missing:
        what = []
        if mismatched:
            what.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
        if missing:
            what.append(f"{len(missing)} missing (e.g. {missing[0]})")
        raise EndopatError(f"{path}: not {cfg.arch} encoder weights: {'; '.join(what)}")
    report.unused = sorted(set(source) - {published(k) for k in target})
    foreign = [k for k in report.unused if not k.startswith(CLASSIFIER[arch.weights_layout])]
    if foreign:
        raise EndopatError(f"{path}: not {cfg.arch} encoder weights: {len(foreign)} of its tensors have no "
                           f"place in {cfg.arch} (e.g. {foreign[0]}): weights of a deeper network?")
    new[f"{norm}.running_mean"] = new[f"{norm}.running_mean"] - const
    model.load_state_dict({f"encoder.{k}": v for k, v in new.items()}, strict=False)
    report.loaded = sorted(new)
    report.stem = (f"RGB kernels -> L (k_L = sum_c w_c/(2 s_c)), {norm}.running_mean lowered by the "
                   f"ImageNet offset" + (", a/b kernels zero" if target[stem].shape[1] == 3 else ""))
    return report


def check_weights_file(cfg: ModelConfig, path: str | Path) -> None:
    """Fail now, naming ``path``, if it does not load onto a ``cfg`` network (before any work)."""
    load_encoder_weights(build_unet(cfg), cfg, path)


def random_published(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised encoder's weights in the layout ``arch``'s weights are published in
    (with running statistics drawn away from 0/1 and a 1000-class classifier): a stand-in file for
    testing the plumbing offline. It is not ImageNet: results with it say nothing about ImageNet."""
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch, image_size=(64, 64))
    encoder = build_unet(cfg, in_channels=3).encoder
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    layout = ARCHS[arch].weights_layout
    state = {PUBLISHED_KEY[layout](k): v for k, v in encoder.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    if layout == "torchvision-resnet":
        state |= {"fc.weight": torch.randn(1000, 2048 if arch == "resnet50" else 512), "fc.bias": torch.zeros(1000)}
    return state
