"""Binary segmentation is bit-identical across a change: fingerprints of one fixed-seed path.

Run it on two source trees (the commit before a change, in a worktree, and the change) and compare
the printed lines; issue 31 (multi-class) required them equal:

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before/src python bench/binary_identity.py /tmp/id-before > before.txt
    PYTHONPATH=src python bench/binary_identity.py /tmp/id-after > after.txt
    diff before.txt after.txt && echo identical

Synthetic frames -> re-colorization pretraining (40 steps) -> fine-tuning (3 epochs) -> evaluation
-> predicted masks, and the quick demo's table1.csv: each printed as a sha256 (of every tensor of a
checkpoint's state_dict, in key order; of a CSV's bytes; of every mask PNG's pixels). One thread.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def tensors_digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(out: Path) -> None:
    import endopat
    from endopat.config import FinetuneConfig, ModelConfig
    from endopat.tasks.config import PretrainConfig
    from endopat.data.readers import open_labeled
    from endopat.data.synth import SynthSpec, generate
    from endopat.demo import run_demo
    from endopat.evaluate import evaluate, write_metrics_csv
    from endopat.finetune import finetune
    from endopat.io import read_image
    from endopat.predict import predict
    from endopat.pretrain import pretrain

    torch.set_num_threads(1)
    print(f"# endopat from {Path(endopat.__file__).parent}", file=sys.stderr)
    data = out / "synth"
    generate(data, SynthSpec(seed=3, size=64, videos=3, unlabeled_videos=2, frames=12, label_every=2))
    model = ModelConfig(features=[8, 8, 16, 16, 32, 8], image_size=[64, 64])
    pre = pretrain(data / "unlabeled", out / "pretrain",
                   PretrainConfig(model=model, steps=40, batch_size=4, seed=0), progress=False, log=lambda *a: None)
    print("pretrain", tensors_digest(pre))
    parts = open_labeled(data / "labeled")
    best = finetune(parts["train"], parts["val"], out / "finetune",
                    FinetuneConfig(model=model, epochs=3, min_samples_per_epoch=16, batch_size=4, seed=0),
                    init=pre, progress=False, log=lambda *a: None)
    print("finetune", tensors_digest(best))
    print("metrics", file_digest(write_metrics_csv(evaluate(best, parts["test"]), out / "metrics.csv")))
    masks = predict(best, data / "labeled" / "test" / "images", out / "predict", progress=False,
                    backend="torch")["masks"]
    h = hashlib.sha256()
    for m in sorted(masks):
        h.update(read_image(m, mode="raw").astype(np.uint8).tobytes())
    print("masks", h.hexdigest()[:16])
    run_demo(out / "demo", quick=True, progress=False, log=lambda *a: None, workers=1)
    print("demo table1", file_digest(out / "demo" / "report" / "table1.csv"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/binary-identity"))
