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
from endopat.config import (
    FinetuneConfig,
    FinetuneSettings,
    ModelConfig,
    RuntimeConfig,
    _Strict,
    load_yaml,
    validate,
)
from endopat.data.masks import MaskFormat
from endopat.data.splits import DEFAULT_FRACTIONS, fraction_label, parse_fraction
from endopat.data.synth import SynthSpec
from endopat.errors import EndopatError
from endopat.seeds import MAX_REPEATS, Seed
from endopat.study import protocol
from endopat.study.methods import Method, MethodSemi, Selection, WeightsFile  # noqa: F401  (the rows; re-exported)
from endopat.study.protocol import PROTOCOLS
from endopat.tasks.config import PretrainConfig, PretrainSettings


MAX_CELLS = 100_000  # the most fine-tuning runs a study config may ask for (upper bound, any machine)


class SynthData(SynthSpec):
    """A synthetic dataset generated into ``out`` before the study starts."""

    out: str


class LabeledSource(_Strict):
    path: str
    layout: str | None = None
    mask_threshold: float = Field(0.5, gt=0, lt=1, description="grey masks (JPEG, 16-bit): instrument from "
                                  "this share of the value range")
    class_map: dict[str, str] = Field(
        {}, description="mask values to classes: value (0-255) or 'R,G,B' -> class name (instrument / background "
        "keep the binary target; other names make a multi-class one; ignore: pixels that count for nothing)")
    classes: list[str] | None = Field(None, description="class-id masks: the class names by id (0 the background); "
                                      "a classes.txt beside images/ and masks/ does the same")
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
        return MaskFormat.parse(self.mask_threshold, self.class_map, f"labeled source {self.path}", self.classes)


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
    seed: Seed = 0
    synth: list[SynthData] = []
    labeled: LabeledSource
    split: str | None = Field(None, description="split JSON; made from the data (and kept) when absent")
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.25, ge=0, lt=1)
    test_groups: list[str] = Field([], description="groups (videos, surgeries) that form the test set")
    val_groups: list[str] = Field([], description="groups that form the validation set")
    fractions: list[str] = list(DEFAULT_FRACTIONS)
    subsets: int = Field(5, ge=1)
    subsets_by: Literal["frame", "video"] = Field(
        "frame", description="label subsets of random frames, or spread over as many videos as possible (each "
        "subset's frames from different videos, the subsets on different videos while there are enough)")
    finetune_seeds: int = Field(1, ge=1, le=MAX_REPEATS, description="fine-tuning runs per subset, each with its own seed")
    pretrain_seeds: int = Field(1, ge=1, le=MAX_REPEATS, description="runs of each pretraining stage, each with its own "
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
        cells = self.subsets * self.pretrain_seeds * self.finetune_seeds * sum(
            len(m.selection.rounds) or len(m.fractions or self.fractions) for m in self.methods)
        if cells > MAX_CELLS:  # checked before the grid is listed: a typo of seeds must not hang the run
            raise ValueError(f"the grid could hold {cells:,} cells (methods x fractions x subsets x seeds), more "
                             f"than {MAX_CELLS:,}: fewer seeds, subsets or rows")
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
