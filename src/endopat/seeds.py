"""The one range every seed a user gives endopat takes (configs, ``--seed``).

Lightning's ``seed_everything`` and numpy's legacy generator take 0 .. 2**32 - 1; a study derives
its stages' and cells' seeds by adding up to ~10**6 (``pretrain_seeds``, ``finetune_seeds`` are at
most :data:`MAX_REPEATS`), so a user's seed stays below 2**31 and every derived one in range."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from endopat.errors import EndopatError

SEED_MAX = 2**31 - 1
MAX_REPEATS = 1000  # pretraining or fine-tuning runs per cell of a study

Seed = Annotated[int, Field(ge=0, le=SEED_MAX, description=f"random seed (0 .. {SEED_MAX})")]


def check_seed(seed: int, where: str) -> int:
    """``seed``, or one line naming ``where`` it came from when it is out of range."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise EndopatError(f"{where}: seed {seed!r} is not an integer in 0 .. {SEED_MAX}")
    return seed
