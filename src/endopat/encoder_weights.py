"""Encoder weights from a local file (e.g. ImageNet), mapped onto an encoder U-Net.

Nothing is downloaded. The file is a ``.pth``/``.pt`` (read with ``torch.load(weights_only=True)``)
or a ``.safetensors``, in the key layout the weights are published in:

* ``torchvision-resnet`` (``resnet18/34/50``): torchvision's ``resnet18-f37072fd.pth``,
  ``resnet34-b627a593.pth``, ``resnet50-0676ba61.pth`` (or ``-11ad3fa6``): keys ``conv1.weight``,
  ``bn1.*``, ``layer1.0.conv1.weight``, ..., ``fc.*`` (``fc`` is not used);
* ``efficientnet-pytorch`` (``efficientnet-b0..b4``): the EfficientNet-PyTorch release files MONAI's
  encoders use, ``efficientnet-b0-355c32eb.pth`` ... ``efficientnet-b4-6ed6700e.pth``: keys
  ``_conv_stem.weight``, ``_bn0.*``, ``_blocks.N.*``, ``_conv_head.weight``, ``_bn1.*``, ``_fc.*``;
* ``vit`` (``vit_s14/b14/s16/b16``): Meta's DINOv2 files, timm's ViT layout (SurgeNet-DINO) and
  MAE/EndoViT files (:mod:`endopat.archs.vit`; position embeddings interpolated to the training
  grid, the MAE decoder skipped and listed);
* ``meta-convnext`` and ``torchvision-convnext`` (``convnext_tiny``, ``convnextv2_tiny``): Meta's
  ConvNeXt / ConvNeXt-V2 releases and SurgeNet's ConvNeXtV2, torchvision's ``convnext_tiny``
  (:mod:`endopat.archs.convnext`).

The layouts are :data:`endopat.weight_layouts.LAYOUTS`; an architecture names the ones its weights
come in, and the one that matches most of the file's keys is used.

A ``state_dict``/``model`` wrapper, a ``module.`` prefix (DataParallel), a ``backbone.`` prefix (a
DINO teacher checkpoint) and an ``encoder.`` prefix (a FlexibleUNet's own state) are unwrapped. Every encoder tensor must be in the file with its
shape, or the file is refused naming what is missing or of another shape; tensors of the file the
encoder has no use for (the classifier) are listed in the report.

**The first convolution** sees RGB normalised with the ImageNet mean m and std s in the published
weights; endopat's networks see normalised L (``L_n = L/50 - 1``) or L/a/b. The rule: treat a grey
pixel of lightness L as the RGB value v = L/100 in every channel (so v = (L_n + 1)/2); the RGB
kernels' response to it is ``sum_c w_c (v - m_c)/s_c``, which is the L kernel ``k_L = sum_c w_c /
(2 s_c)`` applied to L_n plus a constant per output channel ``K = sum_{c, taps} w_c (1/2 - m_c) /
s_c``. The first convolution gets ``k_L`` (and zero a/b kernels for Lab input: colour enters as
the network learns it, as when a generator's L kernel is inflated), and the batch norm right after
it gets its running mean lowered by K (ResNet, EfficientNet) or, for a first layer with a bias (a
ViT's patch embedding, ConvNeXt's stem), the bias is raised by K, so that on grey input the first
block's output equals the published network's on the normalised image (up to zero padding at the
borders; exactly for the unpadded ViT and ConvNeXt stems). m and s are ImageNet's unless the file
was trained with others (``encoder_norm: endovit``: EndoViT's Endo700k statistics). The
normalisation used is stored in the checkpoint's provenance (``encoder_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from endopat.archs import ARCHS, arch_list
from endopat.checkpoints import load_weights_only
from endopat.config import ModelConfig
from endopat.errors import EndopatError, reading
from endopat.networks import build_unet
from endopat.weight_layouts import LAYOUTS, NORMALISATIONS

IMAGENET_MEAN, IMAGENET_STD = NORMALISATIONS["imagenet"]
WRAPPERS = ("state_dict", "model", "model_state_dict", "teacher")  # "teacher": DINO-style (LemonFM, SurgeNet)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file, unwrapped (see above)."""

    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: encoder weights file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file  # imported when a .safetensors file is read

        with reading(path, ".safetensors file"):
            state = load_file(str(path))
    else:
        state = load_weights_only(path)
        for key in WRAPPERS:
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EndopatError(f"{path}: not a file of named tensors (a state dict)")
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "backbone.", "encoder."):  # DataParallel; a DINO teacher; a FlexibleUNet
            k = k[len(prefix):] if k.startswith(prefix) else k
        out[k] = v
    return out


@dataclass
class WeightsReport:
    """What :func:`load_encoder_weights` did, for ``init_report.txt``."""

    file: str
    arch: str
    layout: str
    norm: str = "imagenet"
    loaded: list[str] = field(default_factory=list)
    stem: str = ""
    unused: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"encoder weights: {self.file} ({self.layout} layout, {self.arch}): "
               f"loaded {len(self.loaded)} tensors", f"first convolution: {self.stem}"]
        if self.adapted:
            out.append(f"adapted to this network: {', '.join(self.adapted[:4])}"
                       + (" (interpolated to the training grid)" if "pos_embed" in self.adapted else ""))
        if self.fresh:
            out.append(f"kept fresh (not in the file, optional): {len(self.fresh)} (e.g. {self.fresh[0]})")
        if self.unused:
            shown = ", ".join(self.unused[:6]) + (" ..." if len(self.unused) > 6 else "")
            out.append(f"not used ({len(self.unused)}): {shown}")
        return out

    def provenance(self, digest: str) -> dict:
        return {"file": self.file, "sha256": digest, "arch": self.arch, "layout": self.layout,
                "rgb_normalisation": normalisation(self.norm),
                "first_layer": "RGB kernels folded to L (endopat.encoder_weights)"}


def normalisation(name: str) -> dict:
    """The RGB normalisation ``name`` (:data:`NORMALISATIONS`), as the provenance records it."""
    mean, std = NORMALISATIONS[name]
    return {"name": name, "mean": mean, "std": std}


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


def load_encoder_weights(model: nn.Module, cfg: ModelConfig, path: str | Path, norm: str = "imagenet",
                         source: dict[str, torch.Tensor] | None = None) -> WeightsReport:
    """Copy the encoder weights of ``path`` into ``model`` (a U-Net of ``cfg.arch``), in place;
    ``norm`` is the RGB normalisation the file was trained with (:data:`NORMALISATIONS`);
    ``source``: the file's tensors when already read."""
    arch = ARCHS[cfg.arch]
    if not arch.weights_layouts:
        raise EndopatError(f"{path}: model.arch {cfg.arch} has no published encoder weights; "
                           f"choose one that has ({arch_list(with_weights=True)})")
    source = read_weights_file(path) if source is None else source
    encoder = model.get_submodule("encoder")
    target = encoder.state_dict()
    prepared = {n: LAYOUTS[n].prepare(source) for n in arch.weights_layouts}
    name = max(arch.weights_layouts, key=lambda n: sum(LAYOUTS[n].published(k) in prepared[n] for k in target))
    layout, source = LAYOUTS[name], prepared[name]
    report = WeightsReport(str(path), cfg.arch, name, norm)
    new, used, const = _match(source, target, layout, encoder, arch.first_layer[len("encoder."):], norm, report, path)
    report.unused = sorted(set(source) - used)
    foreign = [k for k in report.unused if not k.startswith(layout.unused)]
    if foreign:
        raise EndopatError(f"{path}: not {cfg.arch} encoder weights: {len(foreign)} of its tensors have no "
                           f"place in {cfg.arch} (e.g. {foreign[0]}): weights of a deeper network?")
    if arch.stem_norm:  # a convolution without bias, then a batch norm: lower its running mean
        key = f"{arch.stem_norm[len('encoder.'):]}.running_mean"
        new[key] = new[key] - const
        where = f"{arch.stem_norm}.running_mean lowered by"
    else:  # a convolution with bias: raise the bias
        key = arch.stem_bias[len("encoder."):]
        new[key] = new[key].float() + const
        where = f"{arch.stem_bias} raised by"
    encoder.load_state_dict(new, strict=False)
    report.loaded = sorted(new)
    report.stem = (f"RGB kernels -> L (k_L = sum_c w_c/(2 s_c)), {where} the {norm} offset"
                   + (", a/b kernels zero" if target[arch.first_layer[len('encoder.'):]].shape[1] == 3 else ""))
    return report


def _match(source: dict, target: dict, layout, encoder: nn.Module, stem: str, norm: str, report: WeightsReport,
           path) -> tuple[dict, set, torch.Tensor]:
    """The file's tensors for each encoder key (the first layer folded from RGB), the file keys
    used and the first layer's constant; a file that does not fit is refused naming what."""
    missing, mismatched, new, used, const = [], [], {}, set(), None
    for key, tensor in target.items():
        fkey = layout.published(key)
        src = source.get(fkey)
        if src is None:
            (report.fresh if key.endswith(layout.optional) else missing).append(key)
        elif key == stem:
            if src.dim() != 4 or src.shape[1] != 3 or src.shape[0] != tensor.shape[0] or src.shape[2:] != tensor.shape[2:]:
                mismatched.append(f"{key} {tuple(src.shape)} vs RGB {(tensor.shape[0], 3, *tensor.shape[2:])}")
            else:
                new[key], const = rgb_stem_to_lab(src.float(), tensor.shape[1], *NORMALISATIONS[norm])
                used.add(fkey)
        elif src.shape != tensor.shape:
            adapted = layout.adapt(key, src, tensor, encoder)
            if adapted is not None:
                new[key], _ = adapted, used.add(fkey)
                report.adapted.append(key)
            elif key.endswith(layout.optional):  # e.g. the MAE decoder's mask token: not this one
                report.fresh.append(key)
            else:
                mismatched.append(f"{key} {tuple(src.shape)} vs {tuple(tensor.shape)}")
        else:
            new[key] = src
            used.add(fkey)
    if not new and not mismatched:
        raise EndopatError(f"{path}: no tensor matches the {layout.name} layout of {report.arch} "
                           f"(the file's keys look like {', '.join(list(source)[:3])})")
    if mismatched or missing:
        what = []
        if mismatched:
            what.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
        if missing:
            what.append(f"{len(missing)} missing (e.g. {missing[0]})")
        raise EndopatError(f"{path}: not {report.arch} encoder weights: {'; '.join(what)}")
    return new, used, const


def check_weights_file(cfg: ModelConfig, path: str | Path) -> None:
    """Fail now, naming ``path``, if it does not load onto a ``cfg`` network (before any work)."""
    load_encoder_weights(build_unet(cfg), cfg, path)


def which_arch(path: str | Path, arch: str | None = None, norm: str = "imagenet"
               ) -> tuple[dict[str, WeightsReport], dict[str, str]]:
    """What a weights file is: the report of every architecture it loads onto (only ``arch`` when
    given) and, for the others, why not (``endopat weights``)."""
    if arch is not None and arch not in ARCHS:
        raise EndopatError(f"--arch {arch}: choose one of {arch_list(with_weights=True)}")
    source = read_weights_file(path)
    loads, refused = {}, {}
    for name in [arch] if arch else [n for n, a in ARCHS.items() if a.weights_layouts]:
        multiple = ARCHS[name].multiple
        cfg = ModelConfig(arch=name, image_size=(224 // multiple * multiple,) * 2)
        try:
            loads[name] = load_encoder_weights(build_unet(cfg), cfg, path, norm, source)
        except EndopatError as err:
            refused[name] = str(err).split(": ", 1)[-1]
    return loads, refused


def random_published(arch: str, seed: int = 0, layout: str | None = None, mae_decoder: bool = False
                     ) -> dict[str, torch.Tensor]:
    """A randomly initialised encoder's weights in the layout ``arch``'s weights are published in
    (``layout``, default its first), with what the published files carry beside the encoder
    (running statistics drawn away from 0/1, a 1000-class classifier, ViT position embeddings for
    518 px (patch 14) or 224 px (patch 16), optionally an MAE decoder): a stand-in file for testing
    the plumbing offline. It is not ImageNet: results with it say nothing about ImageNet."""
    torch.manual_seed(seed)
    spec = ARCHS[arch]
    side = {14: 518, 16: 224}.get(spec.patch, 64)
    encoder = build_unet(ModelConfig(arch=arch, image_size=(side, side)), in_channels=3).encoder
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    for name, p in encoder.named_parameters():
        if name.endswith(("gamma", "mask_token")):
            torch.nn.init.normal_(p, 0.1, 0.05)  # LayerScale, GRN, mask token: away from their 0/1e-5 start
    layout = LAYOUTS[layout or spec.weights_layouts[0]]
    state = layout.export({layout.published(k): v.clone() for k, v in encoder.state_dict().items()
                           if not k.endswith("num_batches_tracked")})
    if layout.name == "torchvision-convnext":
        state = {k: v.reshape(-1, 1, 1) if k.endswith("layer_scale") else v for k, v in state.items()}
    width = {"resnet50": 2048}.get(arch, 512) if layout.name == "torchvision-resnet" else spec.bottleneck(None)
    extra = {"torchvision-resnet": {"fc.weight": torch.randn(1000, width), "fc.bias": torch.zeros(1000)},
             "meta-convnext": {"norm.weight": torch.ones(width), "norm.bias": torch.zeros(width),
                               "head.weight": torch.randn(1000, width), "head.bias": torch.zeros(1000)},
             "metaformer": {"norm.weight": torch.ones(width), "norm.bias": torch.zeros(width),
                            "head.fc1.weight": torch.randn(4 * width, width), "head.fc2.weight": torch.randn(1000, 4 * width)},
             "pvt-v2": {"head.weight": torch.randn(1000, width), "head.bias": torch.zeros(1000)},
             "torchvision-convnext": {"classifier.0.weight": torch.ones(width), "classifier.0.bias": torch.zeros(width),
                                      "classifier.2.weight": torch.randn(1000, width),
                                      "classifier.2.bias": torch.zeros(1000)}}
    state |= extra.get(layout.name, {})
    if layout.name == "vit" and spec.patch == 16:  # MAE, EndoViT and DINO (v1) files carry no encoder mask token
        state.pop("mask_token")
    if mae_decoder:  # MAE's decoder: its own mask token, embedding, blocks, prediction
        state |= {"mask_token": torch.zeros(1, 1, 512), "decoder_embed.weight": torch.randn(512, width),
                  "decoder_pos_embed": torch.zeros(1, 197, 512), "decoder_norm.weight": torch.ones(512),
                  "decoder_pred.weight": torch.randn(768, 512), "decoder_blocks.0.attn.qkv.weight": torch.randn(1536, 512)}
    return state
