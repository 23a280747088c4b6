"""Auxiliary tasks for pretraining, one module each, and their registry.

Adding a task: a module with a :class:`~endopat.tasks.base.Task` subclass (and its pure loss in
:mod:`endopat.losses`), one line below, one test file. ``endopat pretrain --task NAME``, the
study's ``methods: [{pretrain: SOURCE, task: NAME}]`` and the config's ``pretrain.NAME`` section
then know it (docs/design.md walks through one).
"""

from __future__ import annotations

from endopat.errors import EndopatError
from endopat.tasks.base import Task
from endopat.tasks.contrastive import ContrastiveTask
from endopat.tasks.inpaint import InpaintTask
from endopat.tasks.recolor import RecolorTask

TASKS: dict[str, type[Task]] = {
    "recolor": RecolorTask,
    "inpaint": InpaintTask,
    "contrastive": ContrastiveTask,
}

DEFAULT_TASK = "recolor"  # the paper's

__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "known_task"]


def known_task(name: str) -> str:
    """``name`` if it is a task, else the one ValueError every config validator raises."""
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}' (the tasks: {', '.join(TASKS)})")
    return name


def get_task(name: str) -> type[Task]:
    try:
        return TASKS[known_task(name)]
    except ValueError as err:
        raise EndopatError(str(err)) from None
