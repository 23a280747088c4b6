"""Validated configuration for every endopat job.

Configs come from YAML files or CLI flags and are validated here, at the edge: an unknown key is an
error that names the key (pydantic ``extra="forbid"``), so a typo never silently falls back to a
default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from endopat.archs import ARCHS, DEFAULT_ARCH, arch_list
from endopat.data.geometry import Fit
from endopat.errors import EndopatError, reading, validation_message
from endopat.seeds import Seed

MAX_BATCH = 65536  # images per device and batch: a bound that no machine reaches, so a typo is one line
MAX_NODES = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ModelConfig(_Strict):
    """The U-Net shared by re-colorization (generator) and segmentation.

    ``features`` are MONAI ``BasicUNet`` widths (5 encoder levels + the last decoder level).
    ``input`` is what the segmenter sees: ``"Lab"`` (the default: all three channels; a generator
    pretrained on L alone is inflated to it, its first convolution's a/b kernels starting at zero)
    or ``"L"`` (the paper: the single luminance channel the generator saw). On real laparoscopy
    (docs/method.md) Lab gave 0.83 test Dice against 0.31 for L: grey instruments on red tissue are
    a colour cue.
    """

    arch: str = Field(DEFAULT_ARCH, description=f"endopat.archs: {arch_list()} (basic_unet: the paper's U-Net, "
                      "widths `features`; the encoder U-Nets: decoder widths `decoder_channels`)")
    features: tuple[int, int, int, int, int, int] = (16, 16, 32, 64, 128, 16)
    decoder_channels: tuple[int, int, int, int, int] = (256, 128, 64, 32, 16)
    input: Literal["L", "Lab"] = "Lab"
    image_size: tuple[int, int] = (128, 128)
    fit: Fit = Field(
        "letterbox", description="how frames of another aspect ratio enter image_size "
        "(endopat.data.geometry): letterbox keeps the aspect and pads; stretch squashes")

    @field_validator("image_size")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        if any(s <= 0 for s in v):
            raise ValueError(f"image_size {v} must be positive (multiples of the architecture's stride)")
        return v

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in ARCHS:
            raise ValueError(f"arch '{v}': choose one of {arch_list()}")
        return v

    @model_validator(mode="after")
    def _encoder_stride(self) -> "ModelConfig":
        multiple = ARCHS[self.arch].multiple
        if any(s % multiple for s in self.image_size):
            raise ValueError(f"image_size {tuple(self.image_size)} must be multiples of {multiple} for {self.arch} "
                             f"(its encoder's {'total stride' if ARCHS[self.arch].patch is None else 'patch'})")
        return self

    @property
    def in_channels(self) -> int:
        return 1 if self.input == "L" else 3


class DiscriminatorConfig(_Strict):
    """Untrained ResNet18 on Lab images with a sigmoid output in [0, 1].

    ``stem_stride=2`` matches torchvision's ResNet stem (MONAI defaults to 1, ~3x the cost).
    ``width`` scales the ResNet18 channel widths (1.0 = the standard ResNet18). ``norm`` is the
    standard ResNet batch norm by default; under multi-GPU DDP it becomes ``SyncBatchNorm``. PyTorch
    synchronises batch norm only on GPUs, so on CPU (gloo) ranks each normalise their own half of a
    batch: choose ``instance`` or ``group`` to make a multi-process CPU run equal a single process.
    """

    width: float = Field(1.0, gt=0)
    stem_stride: int = Field(2, ge=1)
    norm: Literal["batch", "instance", "group"] = Field(
        "batch", description="ResNet normalisation; batch norm is synchronised across GPUs under DDP")


class LossWeights(_Strict):
    """Weights of eq. 1, L_G = gamma*L1 + lambda*L2 + phi*L3.

    The paper sets them "so that the scale of L1, L2 and L3 is between [0, 1]". ``"auto"`` (the
    default for lambda and phi) divides each reconstruction term by its value at the start of
    training (measured on ``calibration_frames`` frames with the freshly initialised generator), so
    each starts near 1 and falls as it is minimised; gamma = 1 already bounds the LSGAN term by 1.
    A number fixes the weight instead; ``lam: 0.0625, phi: 0.125`` divide each term by its largest
    possible value (docs/method.md explains why that starves the colour terms).
    """

    gamma: float = Field(1.0, ge=0)
    lam: float | Literal["auto"] = Field("auto", description="weight of eq. 3; auto: 1 / its initial value")
    phi: float | Literal["auto"] = Field("auto", description="weight of eq. 4; auto: 1 / its initial value")
    calibration_frames: int = Field(32, ge=1, description="frames used to measure the initial values")

    @field_validator("lam", "phi")
    @classmethod
    def _non_negative(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and v < 0:
            raise ValueError("must be >= 0 or 'auto'")
        return v

    rebalance_alpha: float = Field(0.5, gt=0, le=1)
    black_level: float = Field(
        5.0, ge=0, description="pixels with L below this (the black border) are left out of the "
        "a/b histogram; 0 counts every pixel")


class RuntimeConfig(_Strict):
    """Where and how a training runs (Lightning Fabric): devices per node, nodes, strategy, precision."""

    devices: int | str = 1
    num_nodes: int = Field(1, ge=1, le=MAX_NODES)
    strategy: str = "auto"
    precision: Literal["32", "32-true", "bf16-mixed", "16-mixed"] = "32-true"
    accelerator: str = "auto"
    channels_last: bool = Field(False, description="NHWC memory format (bench/pretrain.py: ~3 % on CPU)")
    compile: bool = Field(False, description="torch.compile the networks (slower on CPU; see docs/design.md)")
    tensorboard: bool = Field(True, description="TensorBoard event files in OUT/tensorboard/ beside the CSV "
                              "logs, when the tensorboard package is installed (pip install 'endopat[tensorboard]')")


ENCODER_WEIGHTS_HELP = ("a local .pth/.safetensors file of encoder weights in the published layout "
                        "(torchvision ResNet/ConvNeXt, EfficientNet-PyTorch, DINOv2, timm ViT, MAE/EndoViT, "
                        "Meta ConvNeXt(V2)/SurgeNet) for model.arch; see endopat.encoder_weights")
EncoderNorm = Literal["imagenet", "endovit"]
ENCODER_NORM_HELP = ("the RGB normalisation the encoder weights were trained with: imagenet (torchvision, DINOv2, "
                     "MAE, SurgeNet) or endovit (EndoViT's Endo700k mean and std); the first layer is folded from it")


class AugmentConfig(_Strict):
    """Fine-tuning augmentation (:mod:`endopat.augment`), applied per sample to each batch."""

    flips: bool = Field(True, description="random horizontal and vertical flips")
    rotate: bool = Field(False, description="random quarter turns (square images only; off: laparoscopic "
                         "views have an up and a down, docs/method.md)")
    gain: float = Field(0.0, ge=0, lt=1, description="luminance gain drawn from [1-gain, 1+gain]")


SEMI_METHODS = ("mean_teacher", "fixmatch", "temporal")  # endopat.semi.SEMI registers one class each


class StrongConfig(_Strict):
    """The strong view of FixMatch / UniMatch and the student's view of the other methods, on the
    network input (L, a, b normalised): each part named and off when 0."""

    jitter: float = Field(0.2, ge=0, le=1, description="colour jitter within the endoscope's range: L gain and "
                          "offset up to +-jitter/2, a/b shifts up to +-jitter/4 (normalised units)")
    blur: float = Field(0.5, ge=0, le=1, description="probability of a Gaussian blur, sigma in [0.1, 2] px")
    cutmix: float = Field(0.5, ge=0, le=1, description="probability of CutMix with another unlabeled frame of the "
                          "batch (its teacher target mixed alike; Yun et al. 2019, as UniMatch uses it)")
    feature_dropout: float = Field(0.5, ge=0, lt=1, description="FixMatch only: UniMatch's feature perturbation, "
                                   "channel dropout of this rate on the deepest encoder features, in the strong stream")
    feature_stream: bool = Field(False, description="FixMatch only: the feature perturbation as UniMatch's separate "
                                 "stream on the plain frame (one more forward and backward: bench/semi.py measured "
                                 "3.0x a supervised step on CPU, against 2.2x in one stream)")


class SemiConfig(_Strict):
    """``method``: mean_teacher (Tarvainen & Valpola 2017: an EMA teacher's probabilities as the
    student's targets, MSE consistency), fixmatch (Sohn et al. 2020 / UniMatch, Yang et al. 2023:
    the model's confident weak-view pseudo-labels trained on strong views and a feature-dropout
    stream), temporal (pseudo-labels of the EMA teacher on a frame ``gap`` frames away in the same
    video, after Zhao et al. 2020 but without motion flow: small motion assumed)."""

    method: Literal[SEMI_METHODS]
    unlabeled: str | None = Field(None, description="the unlabeled frames: a video, a folder of videos or images, "
                                  "or a frame store (endopat frames)")
    weight: float = Field(1.0, ge=0, description="the unlabeled loss's weight after the ramp-up")
    ramp_up: int = Field(200, ge=0, description="steps of the sigmoid ramp-up exp(-5 (1 - t)^2) of the weight "
                         "(Laine & Aila 2017, as Mean Teacher)")
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="unlabeled frames per labeled batch")
    ema: float = Field(0.99, ge=0, lt=1, description="the teacher's exponential moving average decay")
    threshold: float = Field(0.95, gt=0.5, lt=1, description="confidence a pseudo-labeled pixel needs (FixMatch, "
                             "temporal); the others are ignored")
    gap: int = Field(2, ge=1, description="temporal: frames between the two frames of a pair (in the store)")
    fps: float | None = Field(1.0, gt=0, description="videos: frames per second decoded into the store")
    strong: StrongConfig = StrongConfig()


class FinetuneSettings(_Strict):
    """Fine-tuning settings (the study's ``finetune:`` and ``supervised:`` sections)."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="per device")
    lr: float = Field(1e-3, gt=0)
    plateau_patience: int = Field(10, ge=0, description="epochs without val-loss gain before lr x0.1")
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    early_stop_patience: int | None = Field(
        30, ge=1, description="stop after this many epochs without val-loss gain (None: never)"
    )
    min_lr: float = Field(1e-6, ge=0)
    augment: AugmentConfig = AugmentConfig()
    freeze: list[str] = Field(
        [], description="U-Net modules kept fixed while fine-tuning (e.g. [encoder], the architecture's "
        "encoder group); empty: every layer trains, as in the paper")
    min_samples_per_epoch: int = Field(
        64, ge=1, description="repeat a small training set so one epoch shows at least this many images"
    )
    threshold: float = Field(0.5, gt=0, lt=1)
    loss: Literal["ce", "dice_ce"] = Field(
        "ce", description="ce: cross-entropy (the paper's eq. 6); dice_ce: cross-entropy + MONAI's soft Dice "
        "(DiceCELoss's sum, for small classes), both leaving out the ignore id")
    num_workers: int = Field(0, ge=0)
    skip_bad: bool = Field(False, description="leave out unreadable samples (logged, counted)")
    inflate: Literal["zero", "fresh"] = Field(
        "zero", description="a first layer pretrained on L alone (re-colorization) taking an L/a/b input: "
        "its a/b kernels start at zero (the pretrained function unchanged at the start) or fresh (this "
        "network's own random initialisation; docs/results.md: colour under-used after zero)")
    reinit_modules: list[str] = Field(
        ["last"], description="U-Net modules re-initialised after a generator (the paper: the last layer; "
        "`last`, `decoder` and `encoder` name the architecture's groups); e.g. [upcat_1, final_conv] also "
        "drops basic_unet's colour-specific last decoder block")


class FinetuneConfig(FinetuneSettings, RuntimeConfig):
    model: ModelConfig = ModelConfig()
    semi: SemiConfig | None = Field(None, description="semi-supervised fine-tuning: unlabeled frames used while "
                                    "fine-tuning (endopat.semi; None: labels alone)")
    encoder_weights: str | None = Field(None, description=ENCODER_WEIGHTS_HELP)
    encoder_norm: EncoderNorm = Field("imagenet", description=ENCODER_NORM_HELP)
    max_labels: int | None = Field(None, ge=1, description="use at most this many training images")
    seed: Seed = 0


def validate(model: type[BaseModel], data: dict[str, Any], source: str = "config") -> Any:
    """Validate ``data`` against ``model``; errors name the source and every bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise EndopatError(f"{source}: invalid config: {validation_message(err)}") from None
    except EndopatError as err:  # a validator's own words (e.g. a fraction that is not one): name the source
        if str(err).startswith(source):
            raise
        raise EndopatError(f"{source}: invalid config: {err}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EndopatError(f"{path}: config file not found")
    with reading(path, "YAML file"):
        data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise EndopatError(f"{path}: a config must be a mapping of keys to values")
    return data


def load_config(model: type[BaseModel], path: str | Path | None, **overrides: Any) -> Any:
    """Read a YAML config (optional), apply non-None overrides (``a__b`` sets ``a.b``), validate."""
    data = load_yaml(path) if path else {}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split("__")  # model__input -> data["model"]["input"]
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return validate(model, data, str(path) if path else "config")
