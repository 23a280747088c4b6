"""Parity of ``endopat finetune`` with a plain PyTorch loop (bench/yardstick.py) on real surgery.

Surgery-disjoint splits of ../shared/data/endovis15-dev (3 surgeries, 40 labeled frames each):
rotation r trains on surgery r, keeps the best epoch on surgery r+1 and tests on surgery r+2. Like
for like: both loops get the same input (each of ``--inputs``, L and Lab by default: the first
layer sized to it), the same geometry (letterbox into ``--image-size``), network widths and step
budget (40 epochs of 80 samples, batch 8); endopat otherwise runs with its own defaults (``--set``
overrides them, e.g. ``--set augment.rotate=true``). Prints each run's mean test Dice, and per
input both distributions and endopat - yardstick with a 95 % bootstrap interval (seeds resampled
within each rotation). Runs go to a pool of ``--workers`` processes with one thread each.

    python bench/parity.py --seeds 5 --rotations 3          # both inputs: 60 runs
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("ENDOPAT_SHARED_DATA", HERE.parents[1] / "shared" / "data")) / "endovis15-dev"
BUDGET = {"epochs": 40, "min_samples_per_epoch": 80, "batch_size": 8}
FEATURES = [16, 16, 32, 64, 128, 16]
FIELDS = ["method", "input", "rotation", "train", "seed", "dice", "seconds"]


def splits(data: Path, rotation: int):
    from endopat.data.readers import open_labeled

    samples = open_labeled(data)["all"]
    groups = sorted({s.group for s in samples})
    if len(groups) != 3:
        raise SystemExit(f"{data}: expected 3 surgeries, found {groups}")
    part = lambda k: [s for s in samples if s.group == groups[(rotation + k) % 3]]  # noqa: E731
    return part(0), part(1), part(2), groups[rotation % 3]


def parse_sets(items: list[str]) -> dict:
    """``a.b=v`` items -> nested dict (values parsed as YAML scalars)."""
    import yaml

    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def one_run(job: tuple) -> dict:
    method, data, rotation, seed, input, size, sets = job
    import torch

    torch.set_num_threads(1)
    train, val, test, name = splits(Path(data), rotation)
    t = time.perf_counter()
    if method == "yardstick":
        sys.path.insert(0, str(HERE))
        import yardstick

        pairs = lambda ss: [(s.image, s.masks[0]) for s in ss]  # noqa: E731
        dice = yardstick.run(pairs(train), pairs(val), pairs(test), seed=seed, epochs=BUDGET["epochs"],
                             samples_per_epoch=BUDGET["min_samples_per_epoch"],
                             batch_size=BUDGET["batch_size"], features=tuple(FEATURES), size=tuple(size),
                             input=input)
    else:
        from endopat.config import FinetuneConfig, validate
        from endopat.evaluate import evaluate
        from endopat.finetune import finetune

        model = {"features": FEATURES, "image_size": list(size), "input": input, "fit": "letterbox"}
        cfg = validate(FinetuneConfig, merge(dict(BUDGET, model=model, seed=seed), sets), "--set")
        if (cfg.model.input, tuple(cfg.model.image_size), cfg.model.fit) != (input, tuple(size), "letterbox"):
            raise SystemExit("--set may not change model.input, image_size or fit: the yardstick gets the same")
        with tempfile.TemporaryDirectory() as tmp:
            best = finetune(train, val, tmp, cfg, progress=False, log=lambda *a: None)
            dice = [r["dice"] for r in evaluate(best, test)]
    return {"method": method, "input": input, "rotation": rotation, "train": name, "seed": seed,
            "dice": float(np.mean(dice)), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rotations", type=int, default=3, choices=(1, 2, 3))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--inputs", default="L,Lab", help="inputs compared, comma-separated (L, Lab)")
    ap.add_argument("--image-size", default="128x128", help="HxW both loops letterbox into")
    ap.add_argument("--only", choices=("yardstick", "endopat"), help="run one side only")
    ap.add_argument("--reverse", action="store_true", help="run the jobs last first (a second process beside "
                    "a first one, each with its own --csv, meets it in the middle)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="endopat setting a.b=value")
    ap.add_argument("--csv", type=Path, help="write every run's row here (after each run: a killed run keeps them)")
    ap.add_argument("--with", dest="reuse", type=Path, action="append", default=[],
                    help="rows of an earlier run (its --csv) to reuse instead of running them again, e.g. the "
                    "yardstick's after a change to endopat (the yardstick is deterministic for a seed on a CPU)")
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not found (set ENDOPAT_SHARED_DATA or --data)")
    os.environ["OMP_NUM_THREADS"] = "1"  # each worker: one thread (endopat's runtime reads this)
    sets = parse_sets(args.sets)
    inputs = [i.strip() for i in args.inputs.split(",")]
    if any(i not in ("L", "Lab") for i in inputs):
        raise SystemExit(f"--inputs {args.inputs}: choose from L, Lab")
    size = tuple(int(v) for v in args.image_size.lower().split("x"))
    methods = [args.only] if args.only else ["yardstick", "endopat"]
    reused = [dict(r, rotation=int(r["rotation"]), seed=int(r["seed"]), dice=float(r["dice"]),
                   seconds=float(r["seconds"])) for path in args.reuse for r in csv.DictReader(open(path))]
    have = {(r["method"], r["input"], r["rotation"], r["seed"]) for r in reused}
    jobs = [(m, str(args.data), r, s, i, size, sets) for i in inputs for r in range(args.rotations)
            for s in range(args.seeds) for m in methods if (m, i, r, s) not in have]
    jobs = jobs[::-1] if args.reverse else jobs
    print(f"{len(jobs)} runs to do, {len(have)} reused from {', '.join(map(str, args.reuse)) or '-'}", flush=True)
    t0 = time.perf_counter()
    import multiprocessing as mp

    rows = [r for r in reused if r["input"] in inputs and r["rotation"] < args.rotations and r["seed"] < args.seeds
            and r["method"] in methods]
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        for row in pool.map(one_run, jobs):
            rows.append(row)
            print(f"{row['method']:9s} {row['input']:3s} train {row['train']} seed {row['seed']}: "
                  f"test Dice {row['dice']:.3f}"
                  f" ({row['seconds']:.0f} s)", flush=True)
            if args.csv:
                from endopat.io import atomic_write_csv

                atomic_write_csv(args.csv, FIELDS, rows)
    print(f"\nendopat settings: {sets or 'defaults'}; {args.image_size} letterbox; {len(rows)} runs in "
          f"{time.perf_counter() - t0:.0f} s")
    for i in inputs:
        print(f"\ninput {i}:")
        summarise([r for r in rows if r["input"] == i], methods)


def summarise(rows: list[dict], methods: list[str]) -> None:
    by = {m: {} for m in methods}
    for r in rows:
        by[r["method"]].setdefault(r["train"], []).append(r["dice"])
    for m in methods:
        allv = [v for vs in by[m].values() for v in vs]
        per = "  ".join(f"{k}: {np.mean(v):.3f}±{np.std(v):.3f}" for k, v in sorted(by[m].items()))
        print(f"  {m:9s} mean {np.mean(allv):.3f} (sd {np.std(allv):.3f}, n {len(allv)})  {per}")
        print(f"  {'':9s} runs {', '.join(f'{v:.3f}' for v in allv)}")
    if len(methods) == 2:
        from endopat.report.stats import stratified_bootstrap_ci

        d, lo, hi = stratified_bootstrap_ci(by["endopat"], by["yardstick"])
        verdict = "endopat behind" if hi < 0 else "endopat ahead" if lo > 0 else "not resolved"
        print(f"  endopat - yardstick: {d:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}] ({verdict})")


if __name__ == "__main__":
    main()
