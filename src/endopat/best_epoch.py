"""Which epoch a fine-tuning run keeps: the one whose validation loss first beat every earlier one by
more than ``MIN_IMPROVEMENT`` (``best.pt`` is saved then, :func:`endopat.finetune.finetune`). The
report reads a run's ``history.csv`` by the same rule (:mod:`endopat.report.unlabeled`)."""

from __future__ import annotations

from typing import Iterable

MIN_IMPROVEMENT = 1e-6  # a smaller drop of the validation loss is not an improvement (no new checkpoint)


def improves(val_loss: float, best: float) -> bool:
    """Whether ``val_loss`` beats the best so far: the epoch's weights become the kept checkpoint."""
    return val_loss < best - MIN_IMPROVEMENT


def kept(val_losses: Iterable[float]) -> int | None:
    """The index of the epoch a run with these validation losses (one per epoch, in order) kept;
    ``None`` when none improved on an infinite start (every loss NaN or infinite)."""
    best, keep = float("inf"), None
    for i, loss in enumerate(val_losses):
        if improves(loss, best):
            best, keep = loss, i
    return keep
