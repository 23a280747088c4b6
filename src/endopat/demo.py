"""``endopat demo``: the demo study (``configs/demo.yaml``) on synthetic endoscopy.

The default runs in <= 10 minutes on 2 CPU cores; ``quick`` keeps baseline and PAT on the target
domain with one shorter pretraining, for a look at every stage in about a minute.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from endopat.study.config import StudyConfig, load_study
from endopat.study.runner import run_study
from endopat.tasks import DEFAULT_TASK

DEMO_CONFIG = files("endopat") / "configs" / "demo.yaml"


def demo_config(quick: bool = False, data_seed: int = 0) -> StudyConfig:
    """The demo study; ``data_seed`` > 0 generates other synthetic videos (every synth seed + 10 x
    data_seed) and draws another split, subsets and training seeds (``seed: data_seed``)."""
    cfg = load_study(Path(str(DEMO_CONFIG)))
    if data_seed:
        data = cfg.model_dump()
        data.update(name=f"{data['name']}, data seed {data_seed}", seed=data_seed,
                    synth=[dict(d, seed=d["seed"] + 10 * data_seed) for d in data["synth"]])
        cfg = StudyConfig.model_validate(data)
    if not quick:
        return cfg
    data = cfg.model_dump()
    data.update(
        name="demo --quick (synthetic endoscopy)",
        synth=[dict(data["synth"][0], videos=6, unlabeled_videos=4, frames=32)],
        unlabeled={"target": data["unlabeled"]["target"]},
        extra_labeled={},
        methods=[m for m in data["methods"] if m["supervised"] is None and m["pretrain"] in (None, "target")
                 and m["task"] in (None, DEFAULT_TASK)],
        fractions=["1/4"],
        subsets=1,
        pretrain_seeds=1,
        pretrain=dict(data["pretrain"], steps=150, sample_every=75),
    )
    return StudyConfig.model_validate(data)


def default_workers() -> int:
    """One study worker per core, at most 8 (docs/design.md: several single-threaded runs of the
    demo's small networks use a CPU better than one multi-threaded run)."""

    return max(1, min(8, os.cpu_count() or 1))


def run_demo(out: str | Path, quick: bool = False, progress: bool = True, log=print, data_seed: int = 0,
             workers: int | None = None) -> Path:

    out = Path(out)
    cfg = demo_config(quick, data_seed)
    run_study(cfg, out, progress=progress, log=log, workers=workers or default_workers())
    table = (out / "report" / "report.md").read_text()
    start = table.index("| method | labels")
    log(table[start : table.index("\n\n", start)])
    return out / "report" / "report.md"
