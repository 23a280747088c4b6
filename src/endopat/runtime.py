"""Devices, processes and precision through Lightning Fabric, and progress bars.

One code path serves a laptop CPU, one GPU, several GPUs and several nodes: the training loops call
Fabric for placement, DDP wrapping, mixed precision and collective reductions, and only rank 0
writes files.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch


def make_fabric(cfg: Any):
    """A launched Fabric from a config with accelerator/devices/num_nodes/strategy/precision/seed."""
    import warnings

    from lightning_fabric import Fabric

    precision = "32-true" if cfg.precision == "32" else cfg.precision
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*`srun`.*")
        fabric = Fabric(
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            strategy=cfg.strategy,
            precision=precision,
        )
    fabric.launch()
    fabric.seed_everything(cfg.seed, verbose=False)
    if fabric.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        local = max(1, fabric.world_size // max(1, cfg.num_nodes))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return fabric


def prepare_module(module: torch.nn.Module, cfg: Any) -> torch.nn.Module:
    """Apply the runtime's ``channels_last`` and ``compile`` options to a network."""
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if cfg.compile:
        module = torch.compile(module)
    return module


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True,
                 completed: int = 0) -> Iterator[Callable[..., None]]:
    """A rich progress bar; yields ``advance(n=1, **fields)``. Disabled: a no-op callable."""
    if not enabled:
        yield lambda *a, **k: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, completed=completed, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            progress.update(task, advance=n, **({"info": info} if info is not None else {}))

        yield advance
