"""Devices, processes and precision through Lightning Fabric, and progress bars.

One code path serves a laptop CPU, one GPU, several GPUs and several nodes: the training loops call
Fabric for placement, DDP wrapping, mixed precision and collective reductions, and only rank 0
writes files.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from endopat.checkpoints import load_weights_only, save_atomic
from endopat.errors import EndopatError, reading, validation_message
from endopat.io import atomic_write_csv, output_folder, remove_leftovers
from endopat.training_state import SavedState, check_fits, check_rng_state, rng_state, set_rng_state


def make_fabric(cfg: Any):
    """A launched Fabric from a config with accelerator/devices/num_nodes/strategy/precision/seed."""

    from lightning_fabric import Fabric  # heavy: imported when a run starts

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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,  # imported when a progress bar is shown
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, completed=completed, info="")

        def advance(n: int = 1, info: str | None = None) -> None:
            progress.update(task, advance=n, **({"info": info} if info is not None else {}))

        yield advance


class TrainingRun:
    """What every training loop shares, so that a loop body holds only its own steps.

    * devices, DDP and precision (Fabric), with ``setup`` wrapping a network and its optimizer;
    * resume: ``out/last.pt`` (weights only) restores every object registered with ``setup`` or
      ``track``, the position (steps or epochs done), the history, the loop's own ``extra`` state,
      every random generator and the data loader's place in its epoch (``batches``), so a run killed
      at any moment and resumed computes what the uninterrupted run computes, bit for bit (CPU);
    * checkpoints: ``save`` writes that file atomically, and the history as CSV, on rank 0 only;
    * logging: ``record`` keeps a row of scalars on the device and, every ``every`` positions,
      averages the rows since the last log over ranks and appends the mean to the history (and
      to TensorBoard when installed; ``image`` adds a figure; a resumed run purges the events
      after its save, so the curves have no doubled steps);
    * progress: ``progress`` is a rich bar on rank 0, starting where a resumed run stopped.
    """

    def __init__(self, cfg: Any, out: Any, fields: list[str], history_file: str = "history.csv",
                 progress: bool = True, log: Callable[[str], None] = print, kind: str = "training"):

        self.out = output_folder(out)
        self.out.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.out)  # temporary files of a killed run of this folder
        self.cfg, self.fields, self.log, self.show = cfg, fields, log, progress
        self.history_path, self.state_path = self.out / history_file, self.out / "last.pt"
        self.fabric = make_fabric(cfg)
        self.is_main = self.fabric.is_global_zero
        self.kind = kind
        self._saved = self._read_state(fields)
        self.position = self._saved.position if self._saved else 0
        self.history = [dict(r) for r in self._saved.history] if self._saved else []
        self.extra = dict(self._saved.extra) if self._saved else {}
        self._objects: dict[str, Any] = {}
        self._epoch: dict[str, Any] | None = None  # the running epoch of ``batches``
        self._tb: Any = None  # the TensorBoard writer: None before the first use, False when off
        self._pending: dict[str, Any] = {}  # sums of the rows recorded since the last log
        self._pending_n, self._pending_at = 0, 0
        if self._saved:
            log(f"resuming from {self.state_path} at {fields[0]} {self.position}")

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    @property
    def resumed(self) -> bool:
        return self._saved is not None

    def _read_state(self, fields: list[str]) -> SavedState | None:
        """``last.pt`` of the run being resumed (None: a fresh run), checked whole before any step
        (:mod:`endopat.training_state`): a damaged or edited file is one line naming it."""
        path = self.state_path
        if not path.is_file():
            return None
        raw = load_weights_only(path)
        if isinstance(raw, dict) and raw and "objects" not in raw:
            raise EndopatError(f"{path}: a training state of an older endopat (before 0.2); "
                               "start a new --out, or move the file away to start this run again")
        try:
            saved = SavedState.model_validate(raw)
        except ValidationError as err:
            raise EndopatError(f"{path}: not a valid training state: {validation_message(err)}") from None
        if saved.kind not in (None, self.kind):
            raise EndopatError(f"{path}: holds a run of {saved.kind}, not of {self.kind}; give a new --out to start one")
        stray = sorted({k for row in saved.history for k in row} - set(fields))
        if stray:
            raise EndopatError(f"{path}: its history has columns this run does not log ({', '.join(stray)})")
        for state in (saved.rng, *((saved.epoch.rng_at_start, saved.epoch.rng) if saved.epoch else ())):
            if state is not None:
                check_rng_state(state, path)
        return saved

    def saved(self, key: str, kind: Any, default: Any) -> Any:
        """The loop's own value ``key`` (``save(key=...)``) as ``kind`` (a type pydantic checks),
        or ``default`` on a fresh run; one line naming the state file when it is not one."""
        if key not in self.extra:
            return default
        try:
            return TypeAdapter(kind).validate_python(self.extra[key])
        except ValidationError as err:
            raise EndopatError(f"{self.state_path}: its saved '{key}' is not valid ({err.errors()[0]['msg']})") from None

    def track(self, name: str, obj: Any) -> Any:
        """Register an object with ``state_dict``/``load_state_dict`` (restored now when resuming,
        once its saved state is checked to fit it)."""
        if self._saved and name in self._saved.objects:
            check_fits(name, obj, self._saved.objects[name], self.state_path)
            with reading(self.state_path, "training state"):
                obj.load_state_dict(self._saved.objects[name])
        self._objects[name] = obj
        return obj

    def setup(self, name: str, module: torch.nn.Module, optimizer: Any = None):
        """Register ``module`` (and its optimizer), restore them when resuming, and wrap them for
        the devices; returns ``(wrapped module, wrapped optimizer)``. The plain module stays
        registered, so saved keys do not change with compile or DDP."""
        self.track(name, module)
        if optimizer is None:
            return self.fabric.setup_module(prepare_module(module, self.cfg)), None
        self.track(f"{name}.optimizer", optimizer)
        return self.fabric.setup(prepare_module(module, self.cfg), optimizer)

    def loader(self, dataset: Any, **kwargs: Any):
        return self.fabric.setup_dataloaders(torch.utils.data.DataLoader(dataset, **kwargs))

    def batches(self, loader: Any) -> Iterator[Any]:
        """The batches of ``loader``, epoch after epoch, without end. A resumed run first rebuilds
        the epoch it stopped in (random generators as they were when that epoch began, so the
        shuffle is the same), skips the batches it had used, and sets every generator as it was
        at the save: from there on it draws exactly what the uninterrupted run drew."""
        saved = self._saved.epoch if self._saved else None
        if saved is not None and saved.done > len(loader):
            raise EndopatError(f"{self.state_path}: stopped after batch {saved.done} of an epoch of {len(loader)}; "
                               "move the file away to start the run again")
        while True:
            if saved is not None:
                set_rng_state(saved.rng_at_start)
                batches = iter(loader)
                for _ in range(saved.done):
                    next(batches)
                set_rng_state(saved.rng)
                self._epoch, saved = {"rng_at_start": saved.rng_at_start, "done": saved.done}, None
            else:
                self._epoch = {"rng_at_start": rng_state(), "done": 0}
                batches = iter(loader)
            for batch in batches:
                self._epoch["done"] += 1
                yield batch

    def restore_rng(self) -> None:
        """Set every random generator as it was at the save being resumed (no-op on a fresh run)."""
        if self._saved and self._saved.rng is not None:
            set_rng_state(self._saved.rng)

    def record(self, row: dict[str, Any], every: int = 1) -> dict[str, float] | None:
        """Add a row of scalars; tensors stay on the device, summed until the position (the row's
        first field) is a multiple of ``every``: then the mean of the rows since the last log is
        averaged over ranks and turned into floats (the one host sync), appended to the history,
        written to TensorBoard and returned. Otherwise None."""
        key = self.fields[0]
        for k, v in row.items():
            if k != key:
                self._pending[k] = self._pending.get(k, 0) + (v.detach() if torch.is_tensor(v) else v)
        self._pending_n, self._pending_at = self._pending_n + 1, row[key]
        return self.flush() if row[key] % every == 0 else None

    def flush(self) -> dict[str, float] | None:
        """Log the rows recorded since the last log (``save`` calls it first); None when none."""
        if not self._pending_n:
            return None
        n, key = self._pending_n, self.fields[0]
        row = {key: self._pending_at}
        for k, v in self._pending.items():
            row[k] = float(self.fabric.all_reduce(v / n, reduce_op="mean")) if torch.is_tensor(v) else v / n
        self._pending, self._pending_n = {}, 0
        self.history.append(row)
        if tb := self._writer():
            for k, v in row.items():
                if k != key and isinstance(v, float):
                    tb.add_scalar(k, v, row[key])
        return row

    def image(self, tag: str, png: Path, position: int) -> None:
        """A saved figure (PNG) in TensorBoard's images tab, on rank 0."""
        if tb := self._writer():
            tb.add_image(tag, np.asarray(Image.open(png).convert("RGB")), position, dataformats="HWC")

    def _writer(self):
        if self._tb is None:
            self._tb = False
            if self.is_main and getattr(self.cfg, "tensorboard", False):
                try:
                    from torch.utils.tensorboard import (
                        SummaryWriter,  # optional (the tensorboard extra)
                    )
                except ImportError:  # the extra is not installed: the CSV logs only
                    pass
                else:
                    self._tb = SummaryWriter(str(self.out / "tensorboard"),
                                             purge_step=self.position + 1 if self.resumed else None)
        return self._tb

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of a tensor over ranks."""
        return self.fabric.all_reduce(value, reduce_op="sum")

    def save(self, position: int, **extra: Any) -> None:
        """``last.pt`` (atomically) and the history CSV, on rank 0."""

        self.flush()
        self.position = position
        self.extra.update(extra)
        if self.is_main:
            rng = rng_state()
            save_atomic({"kind": self.kind, "position": position, "history": self.history, "extra": self.extra,
                         "objects": {k: o.state_dict() for k, o in self._objects.items()}, "rng": rng,
                         **({"epoch": dict(self._epoch, rng=rng)} if self._epoch else {})}, self.state_path)
            atomic_write_csv(self.history_path, self.fields, self.history)
            if self._tb:
                self._tb.flush()

    def progress(self, description: str, total: int):
        return progress_bar(description, total, self.show and self.is_main, completed=self.position)
