"""The pretraining stages of a study in its report: each task's last sample figure."""

from __future__ import annotations

import shutil
from pathlib import Path

from endopat.study.grid import all_stages
from endopat.tasks import TASKS


def task_figures(out: Path, cfg, rep: Path) -> list[tuple[Path, str]]:
    """Copy the last sample figure of every finished pretraining stage into ``rep``; returns
    ``(figure, caption)`` pairs in the order of the config's methods."""

    figures = []
    for stage in all_stages(cfg):
        if stage.kind != "pretrain" or stage.rep:  # one figure per source and task: repeat 0's
            continue
        samples = sorted((out / "stages" / stage.key / "samples").glob("step_*.png"))
        if not samples:
            continue
        target = rep / f"samples-{stage.key.replace('/', '-').replace('+', '-')}.png"
        shutil.copyfile(samples[-1], target)
        step = int(samples[-1].stem.split("_")[1])
        figures.append((target, f"{stage.task} on '{stage.source}' after {step} steps "
                                f"({TASKS[stage.task].figure})"))
    return figures
