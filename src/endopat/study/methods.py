"""A study's method rows: what a row of Table 1 may carry (pretraining, its task and steps, a
supervised stage, encoder weights, its own fractions, network, learning rate, semi-supervised
fine-tuning and how its labels are drawn), validated alone; :mod:`endopat.study.config` checks
them against the study."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from endopat.choose import STRATEGIES
from endopat.config import ENCODER_NORM_HELP, EncoderNorm, SemiConfig, _Strict
from endopat.tasks import known_task


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
