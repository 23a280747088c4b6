"""The pretraining settings: the loop's own, and a section per auxiliary task validated by that
task's settings class. They live beside the task registry they read (:data:`endopat.tasks.TASKS`),
above every task, so that :mod:`endopat.config` needs no task and the import graph has no circle.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from endopat.config import (
    ENCODER_NORM_HELP,
    ENCODER_WEIGHTS_HELP,
    MAX_BATCH,
    EncoderNorm,
    ModelConfig,
    RuntimeConfig,
    _Strict,
)
from endopat.seeds import Seed
from endopat.tasks import DEFAULT_TASK, TASKS, known_task

# re-colorization's keys, once written at the top of ``pretrain:`` (before tasks had sections)
_RECOLOR_KEYS = {"discriminator", "loss", "lr_g", "lr_d", "betas", "histogram_frames"}


class PretrainSettings(_Strict):
    """Pretraining settings (the study's ``pretrain:`` section): the auxiliary ``task``, the loop's
    own settings, and a section per task named after it (``recolor:``, ``inpaint:``, ...; see
    :mod:`endopat.tasks`), each validated by that task's settings class."""

    model_config = ConfigDict(extra="allow")

    task: str = Field(DEFAULT_TASK, description="the auxiliary task (endopat.tasks)")
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="per device")
    frame_stride: int = Field(1, ge=1, description="keep every n-th video frame")
    frame_fps: float | None = Field(None, gt=0, description="sample videos at this rate instead")
    crop_fov: bool = Field(False, description="cut the black border around the field of view")
    max_frames: int | None = Field(None, ge=1)
    sample_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1, description="log the mean of the scalars over this many steps (kept on "
                           "the device between logs: one host sync per log, not per step)")
    num_workers: int = Field(0, ge=0)
    skip_bad: bool = Field(False, description="skip unreadable videos/images (logged, counted)")

    @model_validator(mode="wrap")
    @classmethod
    def _no_unknown_keys(cls, data: Any, handler: Any) -> Any:
        """A key that is neither a setting nor a task's section is an error, reported together
        with every other error of the config (as ``extra="forbid"`` would). Re-colorization's keys
        at the top (``pretrain: {lr_g: ..., discriminator: ...}``, before tasks had sections) are
        read as its section."""
        if not isinstance(data, dict):
            return handler(data)
        data = dict(data)
        legacy = sorted(_RECOLOR_KEYS & set(data))
        if legacy:
            data["recolor"] = {**{k: data.pop(k) for k in legacy}, **(data.get("recolor") or {})}
        errors = [{"type": "extra_forbidden", "loc": (k,), "input": data[k]}
                  for k in data if k not in set(cls.model_fields) | set(TASKS)]
        for key in set(data) & set(TASKS):  # each task's section, validated by its own settings class
            if isinstance(data[key], TASKS[key].Settings):
                continue
            try:
                data[key] = TASKS[key].Settings.model_validate(data[key] or {})
            except ValidationError as err:
                errors += [{"type": e["type"], "loc": (key, *e["loc"]), "input": e["input"],
                            **({"ctx": e["ctx"]} if "ctx" in e else {})} for e in err.errors()]
                data.pop(key)
        try:
            result = handler(data)
        except ValidationError as err:
            errors = [{k: e[k] for k in ("type", "loc", "input", "ctx") if k in e} for e in err.errors()] + errors
            result = None
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        extra = result.__pydantic_extra__
        for key, task in TASKS.items():  # every task's settings, so that a dump lists every value
            extra.setdefault(key, task.Settings())
        return result

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        return known_task(v)

    def options(self, task: str | None = None) -> Any:
        """The settings of ``task`` (default: this run's), its defaults where no section was given."""
        return self.__pydantic_extra__[task or self.task]


class PretrainConfig(PretrainSettings, RuntimeConfig):
    model_config = ConfigDict(extra="allow")  # task sections, checked by PretrainSettings

    model: ModelConfig = ModelConfig()
    seed: Seed = 0
    encoder_weights: str | None = Field(None, description=ENCODER_WEIGHTS_HELP)
    encoder_norm: EncoderNorm = Field("imagenet", description=ENCODER_NORM_HELP)
