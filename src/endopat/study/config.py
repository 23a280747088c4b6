"""The study config: the paper's experiments (section 2.3) as one YAML file.

Relative paths are resolved against the study's run folder (``--out``), so a config that generates
synthetic data (``synth:``) and reads it back is self-contained; real datasets are best given as
absolute paths, or through an environment variable (``$ENDOPAT_SHARED_DATA/endovis15-dev``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from endopat.archs import ARCHS, arch_list
from endopat.choose import STRATEGIES
from endopat.config import (
    ENCODER_NORM_HELP,
    EncoderNorm,
    FinetuneConfig,
    FinetuneSettings,
    ModelConfig,
    RuntimeConfig,
    SemiConfig,
    _Strict,
    load_yaml,
    validate,
)
from endopat.data.labeled import MaskFormat
from endopat.data.splits import DEFAULT_FRACTIONS, fraction_label, parse_fraction
from endopat.data.synth import SynthSpec
from endopat.errors import EndopatError
from endopat.study import protocol
from endopat.study.protocol import PROTOCOLS
from endopat.tasks import known_task
from endopat.tasks.config import PretrainConfig, PretrainSettings


class SynthData(SynthSpec):
    """A synthetic dataset generated into ``out`` before the study starts."""

    out: str


class LabeledSource(_Strict):
    path: str
    layout: str | None = None
    mask_threshold: float = Field(0.5, gt=0, lt=1, description="grey masks (JPEG, 16-bit): instrument from "
                                  "this share of the value range")
    class_map: dict[str, Literal["instrument", "background"]] = Field(
        {}, description="colour-coded masks: value (0-255) or 'R,G,B' -> instrument / background")
    skip_bad: bool = Field(False, description="leave out the frames the reader finds unusable (a missing mask), "
                           "counted in the log, instead of stopping")
    chunk: int | None = Field(None, ge=1, description="split each video into groups of this many consecutive "
                              "frames (name order), for a source of one clip: a split then keeps neighbouring "
                              "frames together, but its test frames come from the same video")

    @model_validator(mode="after")
    def _valid_class_map(self) -> "LabeledSource":
        try:
            self.mask_format()
        except EndopatError as err:
            raise ValueError(str(err).split(": ", 1)[1]) from None
        return self

    def mask_format(self):

        return MaskFormat.parse(self.mask_threshold, self.class_map, f"labeled source {self.path}")


class UnlabeledSource(_Strict):
    """A pretraining source: a video, a folder of videos or images, or a frame store. A plain path
    in the config means ``{path: ...}`` with the defaults."""

    path: str
    test_frames: Literal["exclude", "keep"] = Field(
        "exclude", description="its files that belong to the test split (same file, same pixels or same "
        "video; endopat.study.sources): exclude leaves them out of pretraining (the default: results that "
        "hold for unseen surgeries); keep pretrains on them, the paper's transductive setting")
    every: int = Field(1, ge=1, description="a folder of images: pretrain on every n-th file only (name order), "
                       "e.g. a 120-frame share of a 2,811-frame source")


class Selection(_Strict):
    """How a method's labeled frames are drawn (endopat.study.selection). A plain name in the config
    means ``{strategy: name}``."""

    strategy: Literal[STRATEGIES] = Field(
        "random", description="random is the paper's; the others choose with endopat.suggest's rules")
    rounds: list[int] = Field([], description="labeling rounds, as cumulative label counts (e.g. [5, 10, 20]): "
                              "each round fine-tunes on what is labeled, then its model chooses the next frames "
                              "from the training pool; the rounds replace the study's fractions for this method")

    @field_validator("rounds")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"rounds {v} must be increasing label counts, each at least 1")
        return v


class WeightsFile(_Strict):
    """An entry of the study's ``weights:`` section: a file and the normalisation it was trained with."""

    path: str
    norm: EncoderNorm = Field("imagenet", description=ENCODER_NORM_HELP)


class MethodSemi(SemiConfig):
    """A method's semi-supervised fine-tuning (endopat.semi): ``method`` and ``source``, a name of the
    study's ``unlabeled`` sources, whose test-split frames are left out by the same rule as
    pretraining's (``test_frames``); the other settings as ``finetune.semi``'s."""

    source: str

    @model_validator(mode="after")
    def _no_path(self) -> "MethodSemi":
        if self.unlabeled is not None:
            raise ValueError("a method's semi names its frames by source (a name of unlabeled), not by path")
        return self


class Method(_Strict):
    """A row of Table 1: optional pretraining on an unlabeled source with an auxiliary ``task``
    (default: the study's ``pretrain.task``, re-colorization), then optional supervised pretraining
    on another labeled set, then fine-tuning on the target labels.

    baseline: neither; PAT: ``pretrain``; SOA: ``supervised``; PAT-Ext: both. ``encoder_weights``
    (a name of the study's ``weights:`` section, or a file) starts the method's first network from
    those encoder weights: alone (e.g. ImageNet), or as the start of its pretraining ("re-colorization
    from ImageNet"); it needs an encoder ``model.arch``."""

    name: str
    pretrain: str | None = None
    task: str | None = Field(None, description="auxiliary task (endopat.tasks); needs pretrain")
    pretrain_steps: int | None = Field(None, ge=1, description="this method's pretraining steps (default: the "
                                       "study's pretrain.steps); a stage of its own")
    supervised: str | None = None
    encoder_weights: str | None = None
    fractions: list[str] | None = Field(None, description="this method's label fractions, some of the study's "
                                        "(default: all of them): e.g. an ablation at the small fractions only")
    arch: str | None = Field(None, description="this method's model.arch (default: the study's): e.g. a ViT "
                             "beside the paper's U-Net in one study; its stages are its own")
    semi: MethodSemi | None = Field(None, description="semi-supervised fine-tuning on an unlabeled source: "
                                    "{method: mean_teacher | fixmatch | temporal, source: NAME}, with or without "
                                    "pretraining (then 'both' is a row of the table)")
    lr: float | None = Field(None, gt=0, description="this method's fine-tuning learning rate (default: the "
                             "study's finetune.lr): e.g. does a smaller one keep more of a pretrained start?")
    selection: Selection = Field(Selection(), description="how the cell's labeled frames are drawn from the "
                                 "training pool: a strategy name, or {strategy, rounds}")

    @field_validator("selection", mode="before")
    @classmethod
    def _a_name_is_a_strategy(cls, v):
        return {"strategy": v} if isinstance(v, str) else v

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str | None) -> str | None:
        return v if v is None else known_task(v)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-").lower()


class StudyConfig(_Strict):
    name: str = "study"
    protocol: Literal[PROTOCOLS] = Field(
        "endopat", description="paper: the paper's protocol (L input, no augmentation, transductive "
        "pretraining, a validation subset per label subset), each part unless set in the config "
        "(endopat.study.protocol); the report lists every remaining deviation from the paper")
    validation: Literal["whole", "subsets"] = Field(
        "whole", description="what a cell validates on (learning-rate plateaus, early stopping, the kept "
        "epoch): the whole validation split, or subsets: the paper's, the label fraction's share of it, "
        "disjoint across label subsets")
    seed: int = 0
    synth: list[SynthData] = []
    labeled: LabeledSource
    split: str | None = Field(None, description="split JSON; made from the data (and kept) when absent")
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    test_groups: list[str] = Field([], description="groups (videos, surgeries) that form the test set")
    val_groups: list[str] = Field([], description="groups that form the validation set")
    fractions: list[str] = list(DEFAULT_FRACTIONS)
    subsets: int = Field(5, ge=1)
    finetune_seeds: int = Field(1, ge=1, description="fine-tuning runs per subset, each with its own seed")
    pretrain_seeds: int = Field(1, ge=1, description="runs of each pretraining stage, each with its own "
                                "seed and shared by every cell that starts from it")
    unlabeled: dict[str, UnlabeledSource] = Field({}, description="pretraining sources by name: a path, or "
                                                  "{path, test_frames: exclude | keep}")
    extra_labeled: dict[str, LabeledSource] = {}
    weights: dict[str, WeightsFile] = Field({}, description="named encoder weight files (endopat.encoder_weights) "
                                            "that methods name in encoder_weights: a path, or {path, norm}")
    methods: list[Method]
    baseline: str = "baseline"
    model: ModelConfig = ModelConfig()
    pretrain: PretrainSettings = PretrainSettings()
    supervised: FinetuneSettings = FinetuneSettings()
    finetune: FinetuneSettings = FinetuneSettings()
    runtime: RuntimeConfig = RuntimeConfig()
    overlays: int = Field(4, ge=0, description="test images shown with each method's prediction")

    @model_validator(mode="before")
    @classmethod
    def _protocol(cls, data):
        return protocol.apply(data)

    @field_validator("unlabeled", "weights", mode="before")
    @classmethod
    def _paths_are_sources(cls, v):
        return {k: {"path": s} if isinstance(s, str) else s for k, s in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _check_references(self) -> "StudyConfig":
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError("method names must be unique")
        if len({m.slug for m in self.methods}) != len(names):
            raise ValueError("method names must differ in more than punctuation")
        for m in self.methods:
            if m.pretrain is not None and m.pretrain not in self.unlabeled:
                raise ValueError(f"method '{m.name}': pretrain source '{m.pretrain}' is not in unlabeled")
            if m.semi is not None and m.semi.source not in self.unlabeled:
                raise ValueError(f"method '{m.name}': semi source '{m.semi.source}' is not in unlabeled")
            if m.pretrain_steps is not None and m.pretrain is None:
                raise ValueError(f"method '{m.name}': pretrain_steps needs a pretrain source")
            if m.task is not None and m.pretrain is None:
                raise ValueError(f"method '{m.name}': task '{m.task}' needs a pretrain source")
            if m.supervised is not None and m.supervised not in self.extra_labeled:
                raise ValueError(f"method '{m.name}': supervised set '{m.supervised}' is not in extra_labeled")
            arch = m.arch or self.model.arch
            if m.arch is not None:
                try:
                    self.model_for(m)
                except ValidationError as err:
                    raise ValueError(f"method '{m.name}': {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None
            if m.encoder_weights is not None and not ARCHS[arch].weights_layouts:
                raise ValueError(f"method '{m.name}': encoder_weights need a model.arch with published encoder "
                                 f"weights ({arch_list(with_weights=True)}), not {arch}")
        for f in self.fractions:
            parse_fraction(f)
        labels = {fraction_label(f) for f in self.fractions}
        for m in self.methods:
            unknown = [f for f in m.fractions or [] if fraction_label(f) not in labels]
            if unknown:
                raise ValueError(f"method '{m.name}': fractions {unknown} are not among the study's {self.fractions}")
            if m.fractions is not None and m.selection.rounds:
                raise ValueError(f"method '{m.name}': fractions and selection rounds exclude each other")
        return self

    def model_for(self, method: Method | None = None, arch: str | None = None) -> ModelConfig:
        """The network of ``method`` (or of ``arch``): the study's, with the method's own arch."""
        arch = arch or (method.arch if method is not None else None)
        return self.model if arch is None else ModelConfig.model_validate({**self.model.model_dump(), "arch": arch})

    def pretrain_config(self, task: str | None = None, seed: int | None = None, encoder_weights: str | None = None,
                        steps: int | None = None, arch: str | None = None, norm: str = "imagenet") -> PretrainConfig:
        data = (self.pretrain.model_dump() | self.runtime.model_dump() | ({"task": task} if task else {})
                | ({"steps": steps} if steps else {}))
        return PretrainConfig.model_validate(data | {"model": self.model_for(arch=arch),
                                                     "seed": self.seed if seed is None else seed,
                                                     "encoder_weights": encoder_weights, "encoder_norm": norm})

    def finetune_config(self, section: FinetuneSettings, seed: int, encoder_weights: str | None = None,
                        arch: str | None = None, norm: str = "imagenet", lr: float | None = None) -> FinetuneConfig:
        data = section.model_dump() | self.runtime.model_dump() | ({"lr": lr} if lr else {})
        return FinetuneConfig.model_validate(data | {"model": self.model_for(arch=arch), "seed": seed,
                                                     "encoder_weights": encoder_weights, "encoder_norm": norm})

    def random_twin(self, method: Method) -> Method | None:
        """The method that differs from ``method`` only in drawing its labels at random (what its
        selection is compared with), if the study has one."""
        same = lambda m: (m.pretrain, m.task, m.supervised, m.encoder_weights, m.arch, m.semi)  # noqa: E731
        if method.selection.strategy == "random":
            return None
        return next((m for m in self.methods if m.selection.strategy == "random" and same(m) == same(method)
                     and m.selection.rounds == method.selection.rounds), None)

    def weights_file(self, name: str, root: Path) -> str:
        """A method's ``encoder_weights``: a name of ``weights:`` or a path, resolved."""
        entry = self.weights.get(name)
        return str(self.resolve(entry.path if entry else name, root))

    def weights_norm(self, name: str) -> str:
        """The normalisation a method's ``encoder_weights`` were trained with (default imagenet)."""
        entry = self.weights.get(name)
        return entry.norm if entry else "imagenet"

    def resolve(self, path: str, root: Path) -> Path:
        """A path of the config: ``$VARS`` and ``~`` expanded; relative ones inside ``root``."""
        expanded = os.path.expandvars(path)
        unset = re.search(r"\$\{?(\w+)", expanded)
        if unset:
            raise EndopatError(f"path '{path}': environment variable {unset.group(1)} is not set")
        p = Path(expanded).expanduser()
        return p if p.is_absolute() else root / p


def load_study(path: str | Path) -> StudyConfig:
    return validate(StudyConfig, load_yaml(path), str(path))


def study_from_dict(data: dict[str, Any], source: str = "study config") -> StudyConfig:
    return validate(StudyConfig, data, source)
