"""The floor of tests/test_finetune.py::test_fine_tuning_on_a_tiny_real_split_clears_a_floor_no_broken_loop_reaches:
what the working loop and broken ones score on the same tiny real split (EndoVis 2015 dev set, 14
frames of OP1 to train, 7 of OP2 to validate, 14 of OP3 to test, 64x64, 10 epochs of 48 samples).

    python bench/floor.py            # prints mean test Dice per variant and seed
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ENDOPAT_SHARED_DATA", HERE.parents[1] / "shared" / "data")) / "endovis15-dev"


def main() -> None:
    import torch

    from endopat.config import FinetuneConfig, ModelConfig
    from endopat.data.readers import open_labeled
    from endopat.evaluate import evaluate
    from endopat.metrics import dice_iou
    from endopat.finetune import finetune

    torch.set_num_threads(1)
    samples = open_labeled(DATA)["all"]
    surgery = lambda g: [s for s in samples if s.group == g]  # noqa: E731
    train, val, test = surgery("OP1_img")[::3], surgery("OP2_img")[::6], surgery("OP3_img")[::3]

    def run(seed=0, lr=1e-3, input="Lab", pairs=train) -> float:
        cfg = FinetuneConfig(model=ModelConfig(features=(8, 8, 16, 32, 64, 8), image_size=(64, 64), input=input),
                             epochs=10, min_samples_per_epoch=48, seed=seed, lr=lr)
        with tempfile.TemporaryDirectory() as tmp:
            best = finetune(pairs, val, tmp, cfg, progress=False, log=lambda *a: None)
            return float(np.mean([r["dice"] for r in evaluate(best, test)]))

    wrong = [dataclasses.replace(s, masks=train[(i + 1) % len(train)].masks) for i, s in enumerate(train)]
    from endopat.data.labeled import load_image, load_mask

    masks = [torch.from_numpy(load_mask(s, load_image(s).shape[:2]))[None] for s in test]
    everything = float(np.mean([float(dice_iou(torch.ones_like(m), m)[0]) for m in masks]))
    rows = [("working loop (the test's setting)", [run(seed=s) for s in range(3)]),
            ("a loop that does not learn (lr 1e-9)", [run(seed=s, lr=1e-9) for s in range(3)]),
            ("masks paired with the wrong images", [run(pairs=wrong)]),
            ("all-instrument prediction", [everything]),
            ("L-only input (colour thrown away)", [run(seed=s, input="L") for s in range(2)])]
    for name, values in rows:
        print(f"{name:40s} " + ", ".join(f"{v:.3f}" for v in values))


if __name__ == "__main__":
    main()
