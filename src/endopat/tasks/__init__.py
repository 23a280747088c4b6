"""Auxiliary tasks for pretraining, one module each, and their registry.

Adding a task: a module with a :class:`~endopat.tasks.base.Task` subclass (and its pure loss in
:mod:`endopat.losses`), one line below, one test file. ``endopat pretrain --task NAME``, the
study's ``methods: [{pretrain: SOURCE, task: NAME}]`` and the config's ``pretrain.NAME`` section
then know it (docs/design.md walks through one).
"""

from __future__ import annotations

from endopat.tasks.base import Task
from endopat.tasks.contrastive import ContrastiveTask
from endopat.tasks.inpaint import InpaintTask
from endopat.tasks.recolor import RecolorTask

TASKS: dict[str, type[Task]] = {
    "recolor": RecolorTask,
    "inpaint": InpaintTask,
    "contrastive": ContrastiveTask,
}

__all__ = ["TASKS", "Task", "get_task"]


def get_task(name: str) -> type[Task]:
    from endopat.errors import EndopatError

    if name not in TASKS:
        raise EndopatError(f"unknown task '{name}' (the tasks: {', '.join(TASKS)})")
    return TASKS[name]
