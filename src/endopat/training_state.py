"""What a training run saves in ``last.pt`` to resume as the same run, and the checks that make a
damaged or edited state file one line naming it before any step (``endopat.runtime.TrainingRun``
writes and restores it).

The file holds the run's kind, position and history, the loop's own values (``extra``), the
``state_dict`` of every registered object, every random generator (``rng``) and, mid-epoch, the
generators at the epoch's start with the batches done (``epoch``). A resume checks the layout
(:class:`SavedState`), each object's state against the fresh object's (:func:`check_fits`: the same
keys, types and tensor shapes), the optimizer's moments against its parameters, and the generators
by setting them (:func:`check_rng_state`).
"""

from __future__ import annotations

import numbers
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from endopat.errors import EndopatError, reading


class EpochState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rng_at_start: dict[str, Any]
    done: int = Field(ge=0)
    rng: dict[str, Any]


class SavedState(BaseModel):
    """The layout of ``last.pt`` (values of endopat >= 0.2; ``kind`` absent in the first of them)."""

    model_config = ConfigDict(extra="ignore")

    kind: str | None = None
    position: int = Field(0, ge=0)
    history: list[dict[str, float | int | str | None]] = []
    extra: dict[str, Any] = {}
    objects: dict[str, dict[str, Any]]
    rng: dict[str, Any] | None = None
    epoch: EpochState | None = None


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from (torch CPU and CUDA, numpy, Python),
    as tensors and plain values, so that ``torch.load(weights_only=True)`` reads it back."""

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": version, "internal": list(internal), "gauss": py_gauss}}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def check_rng_state(state: dict[str, Any], path: Path) -> None:
    """``state`` sets every generator (tried, then the generators are put back as they were)."""
    now = rng_state()
    try:
        with reading(path, "training state (random generators)"):
            set_rng_state(state)
    finally:
        set_rng_state(now)


class GeneratorState:
    """A ``torch.Generator`` seen as a stateful object (``state_dict``/``load_state_dict``)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["state"])


def _mismatch(fresh: Any, saved: Any, where: str) -> str | None:
    """Where ``saved`` differs from ``fresh`` in keys, types or tensor shapes (None: it fits). An
    empty container of the fresh object takes anything (an optimizer's moments before its first step)."""
    if torch.is_tensor(fresh):
        ok = torch.is_tensor(saved) and saved.shape == fresh.shape and saved.dtype == fresh.dtype
        return None if ok else f"{where}: {_what(saved)}, not a {tuple(fresh.shape)} {fresh.dtype} tensor"
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return f"{where}: {_what(saved)}, not a mapping"
        if fresh and saved.keys() != fresh.keys():
            return f"{where}: keys {sorted(map(str, saved))[:4]}..., not {sorted(map(str, fresh))[:4]}..."
        return next((m for k in fresh if (m := _mismatch(fresh[k], saved[k], f"{where}.{k}"))), None)
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or (fresh and len(saved) != len(fresh)):
            return f"{where}: {_what(saved)}, not a list of {len(fresh)}"
        return next((m for i, (f, s) in enumerate(zip(fresh, saved)) if (m := _mismatch(f, s, f"{where}[{i}]"))),
                    None)
    if isinstance(fresh, numbers.Real) and not isinstance(fresh, bool):
        ok = isinstance(saved, numbers.Real) and not isinstance(saved, bool)
        return None if ok else f"{where}: {_what(saved)}, not a number"
    if fresh is not None and not isinstance(saved, type(fresh)):
        return f"{where}: {_what(saved)}, not a {type(fresh).__name__}"
    return None


def _what(value: Any) -> str:
    return f"a {tuple(value.shape)} tensor" if torch.is_tensor(value) else f"a {type(value).__name__}"


def check_fits(name: str, obj: Any, saved: dict[str, Any], path: Path) -> None:
    """``saved`` has the layout of ``obj``'s own ``state_dict`` and, for an optimizer, moments
    shaped like the parameters they belong to."""
    problem = _mismatch(obj.state_dict(), saved, name)
    if problem is None and isinstance(obj, torch.optim.Optimizer):
        params = [p for group in obj.param_groups for p in group["params"]]
        for i, state in saved["state"].items():
            if not isinstance(i, int) or not 0 <= i < len(params) or not isinstance(state, dict):
                problem = f"{name}.state: an entry {i!r} for no parameter"
                break
            problem = next((f"{name}.state[{i}].{k}: {_what(v)}, not shaped like its parameter "
                            f"{tuple(params[i].shape)}" for k, v in state.items()
                            if torch.is_tensor(v) and v.ndim and v.shape != params[i].shape), None)
            if problem:
                break
    if problem:
        raise EndopatError(f"{path}: its saved state does not fit this run ({problem}); "
                           "move the file away to start the run again")
