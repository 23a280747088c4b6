"""``endopat demo``: the demo study (``configs/demo.yaml``) on synthetic endoscopy.

The default runs in <= 10 minutes on 2 CPU cores; ``quick`` keeps baseline and PAT on the target
domain with a shorter pretraining, for a look at every stage in under a minute.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from endopat.study.config import StudyConfig, load_study

DEMO_CONFIG = files("endopat") / "configs" / "demo.yaml"


def demo_config(quick: bool = False) -> StudyConfig:
    cfg = load_study(Path(str(DEMO_CONFIG)))
    if not quick:
        return cfg
    data = cfg.model_dump()
    data.update(
        name="demo --quick (synthetic endoscopy)",
        synth=[dict(data["synth"][0], videos=6, unlabeled_videos=4, frames=32)],
        unlabeled={"target": data["unlabeled"]["target"]},
        extra_labeled={},
        methods=[m for m in data["methods"] if m["supervised"] is None and m["pretrain"] in (None, "target")
                 and m["task"] in (None, "recolor")],
        fractions=["1/4"],
        subsets=1,
        pretrain=dict(data["pretrain"], steps=200, sample_every=100),
        finetune=dict(data["finetune"], epochs=25, early_stop_patience=8),
    )
    return StudyConfig.model_validate(data)


def run_demo(out: str | Path, quick: bool = False, progress: bool = True, log=print) -> Path:
    from endopat.study.runner import run_study

    out = Path(out)
    cfg = demo_config(quick)
    run_study(cfg, out, progress=progress, log=log)
    table = (out / "report" / "report.md").read_text()
    start = table.index("| method | labels")
    log(table[start : table.index("\n\n", start)])
    return out / "report" / "report.md"
