"""Run a study: shared stages once, every cell independently, results written atomically.

Run folder::

    study.json, split.json, sources/   the config, the split, the pretraining sources (endopat.study.prepare)
    stages/pretrain/<source>[+<task>][_p<rep>]/ pretraining runs (pretrained.pt, losses.csv, samples/, ...)
    stages/supervised/<set>[+pat-<source>][_p<rep>]/   supervised pretraining runs (best.pt)
    cells/<method>/f<fraction>_s<subset>[_p<rep>][_r<repeat>]/metrics.csv   per-test-image Dice/IoU of one cell
    cells/<method>/f<fraction>_s<subset>/run/          its fine-tuning run (best.pt, history)
    report/                            tables, figures, HTML (endopat.study.report)

A cell is finished when its ``metrics.csv`` exists; that file is written last and atomically, so a
study killed at any moment and started again recomputes nothing that was finished and resumes the
stage or cell it was in (the training loops resume from their ``last.pt``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from endopat.config import SemiConfig
from endopat.data.frames import build_store
from endopat.data.labeled import Sample
from endopat.errors import EndopatError
from endopat.evaluate import evaluate, write_metrics_csv
from endopat.finetune import finetune
from endopat.io import atomic_write_text, output_folder, remove_leftovers
from endopat.machine import machine
from endopat.pretrain import pretrain
from endopat.study.report import write_study_report
from endopat.runtime import progress_bar
from endopat.study.config import StudyConfig
from endopat.study.grid import (
    Cell,
    Stage,
    all_stages,
    cells,
    init_stage,
    only_methods,
    round_cells,
    shard,
    validation_ids,
)
from endopat.study.prepare import (
    StudyData,
    all_samples,
    check_paths,
    check_same_study,
    check_weights,
    file_lock,
    prepare,
    reopen,
)
from endopat.study.selection import saved_ids, select, select_round
from endopat.study.sources import pretraining_source, semi_store

Log = Callable[[str], None]

__all__ = ["StudyData", "check_same_study", "prepare", "reopen", "run_cell", "run_stage", "run_study"]


def stage_dir(out: Path, stage: Stage) -> Path:
    return out / "stages" / stage.key


def stage_checkpoint(out: Path, stage: Stage) -> Path:
    return stage_dir(out, stage) / ("pretrained.pt" if stage.kind == "pretrain" else "best.pt")


def stage_done(out: Path, stage: Stage) -> bool:
    """A stage is finished when its record and its checkpoint are both there: a record alone (a run
    folder's results copied without the weights, e.g. an archive) runs the stage again."""
    return (stage_dir(out, stage) / "done.json").is_file() and stage_checkpoint(out, stage).is_file()


def _extra_train_val(samples: list[Sample], parts: dict, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Train/val of a supervised-pretraining set: its own folders, else ~15 % of its groups as val."""
    if "train" in parts and "val" in parts:
        return parts["train"], parts["val"]
    groups = sorted({s.group for s in samples})
    if len(groups) < 2:
        raise EndopatError("a supervised-pretraining set needs at least 2 groups (videos) for train/val")
    rng = np.random.default_rng(seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    val_groups = set(order[: max(1, round(0.15 * len(groups)))])
    return [s for s in samples if s.group not in val_groups], [s for s in samples if s.group in val_groups]


def run_stage(stage: Stage, cfg: StudyConfig, out: Path, progress: bool, log: Log) -> Path:
    """Run (or resume, or skip when finished) one shared stage; returns its checkpoint."""

    ckpt, folder = stage_checkpoint(out, stage), stage_dir(out, stage)
    with file_lock(out / "locks" / (stage.key.replace("/", "_") + ".lock")):
        if stage_done(out, stage):
            return ckpt
        t = time.time()
        weights = cfg.weights_file(stage.weights, out) if stage.weights else None
        norm = cfg.weights_norm(stage.weights) if stage.weights else "imagenet"
        if stage.kind == "pretrain":
            log(f"stage {stage.key}: {stage.task} pretraining")
            pretrain(pretraining_source(out, stage.source), folder,
                     cfg.pretrain_config(stage.task, stage.seed(cfg.seed), weights, stage.steps, stage.arch, norm),
                     progress=progress, log=log)
        else:
            init = (run_stage(Stage("pretrain", stage.pretrain, task=stage.task, rep=stage.rep,
                                    weights=stage.weights, steps=stage.steps, arch=stage.arch), cfg, out, progress,
                                   log)
                    if stage.pretrain else None)
            log(f"stage {stage.key}: supervised pretraining")
            samples, parts = all_samples(cfg.extra_labeled[stage.source], out, cfg)
            train, val = _extra_train_val(samples, parts, cfg.seed)
            finetune(train, val, folder, cfg.finetune_config(cfg.supervised, stage.seed(cfg.seed),
                                                             None if init else weights, stage.arch, norm),
                     init=init, progress=progress, log=log, provenance={"stage": stage.key})
        atomic_write_text(folder / "done.json", json.dumps({"stage": stage.key, "seconds": time.time() - t,
                                                            "machine": machine()}))
    return ckpt


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.key


def is_done(out: Path, cell: Cell) -> bool:
    return (cell_dir(out, cell) / "metrics.csv").is_file()


def _round_ids(cell: Cell, cfg: StudyConfig, data: StudyData, out: Path, init: Path | None, progress: bool,
               log: Log) -> list[str]:
    """A labeling round's training ids: the previous round (run first when it is not finished)
    and the frames its model chooses (endopat.study.selection.select_round)."""

    chain = round_cells(cell, len(data.split.train))
    labeled, model = [], init
    if cell.round > 1:
        prev = chain[cell.round - 2]
        if not is_done(out, prev):
            run_cell(prev, cfg, data, out, progress, log)
        labeled = saved_ids(cell_dir(out, prev))
        model = cell_dir(out, prev) / "run" / "best.pt"
    seed = cell.seed(cfg.seed) + 7919 * cell.round  # each round's own draw
    return select_round(cell.method.selection.strategy, data, cell.labels, labeled, seed, model, cell_dir(out, cell))


def semi_config(semi, model, out: Path) -> SemiConfig:
    """A method's semi-supervised settings with its source's frames: the view pretraining reads
    (test frames left out by the source's rule), decoded once per network size into a frame store
    every cell of the study shares."""
    h, w = model.image_size
    store = semi_store(out, semi.source, model, semi.fps)
    with file_lock(out / "locks" / f"store_{semi.source}_{h}x{w}.lock"):
        build_store(pretraining_source(out, semi.source), store, (h, w), fps=semi.fps, fit=model.fit,
                    log=lambda *a: None)
    return SemiConfig.model_validate({**semi.model_dump(exclude={"source"}), "unlabeled": str(store)})


def run_cell(cell: Cell, cfg: StudyConfig, data: StudyData, out: Path, progress: bool, log: Log) -> Path:
    """Fine-tune and evaluate one cell (a labeling round first runs the rounds before it)."""
    if not cell.round:
        return _run_cell(cell, cfg, data, out, progress, log)
    with file_lock(out / "locks" / ("cell_" + cell.key.replace("/", "_") + ".lock")):
        if is_done(out, cell):  # another worker finished it while this one waited
            return cell_dir(out, cell) / "metrics.csv"
        return _run_cell(cell, cfg, data, out, progress, log)


def _run_cell(cell: Cell, cfg: StudyConfig, data: StudyData, out: Path, progress: bool, log: Log) -> Path:
    folder = cell_dir(out, cell)
    stage = init_stage(cell.method, cfg.pretrain.task, cell.pretrain_rep)
    init = run_stage(stage, cfg, out, progress, log) if stage else None
    t = time.time()
    # encoder weights go into the first network a method trains: its stage's, or the cell's own
    w = cell.method.encoder_weights
    weights = cfg.weights_file(w, out) if w and init is None else None
    ft_cfg = cfg.finetune_config(cfg.finetune, cell.seed(cfg.seed), weights, cell.method.arch,
                                 cfg.weights_norm(w) if w else "imagenet", lr=cell.method.lr)
    if cell.method.semi is not None:
        ft_cfg = ft_cfg.model_copy(update={"semi": semi_config(cell.method.semi, ft_cfg.model, out)})

    val = data.ids(validation_ids(cfg, data.split, cell))

    def round_one(ids: list[str], where: Path) -> Path:  # uncertainty selection's first round
        return finetune(data.ids(ids), val, where, ft_cfg, init=init, progress=progress,
                        log=lambda *a: None, provenance={"cell": cell.key, "round": 1})

    if cell.round:
        train = data.ids(_round_ids(cell, cfg, data, out, init, progress, log))
    else:
        train = data.ids(select(cell.method.selection.strategy, data, cell.fraction, cell.subset,
                                cell.seed(cfg.seed), init, folder, round_one))
    best = finetune(train, val, folder / "run", ft_cfg, init=init,
                    progress=progress, log=lambda *a: None,
                    provenance={"cell": cell.key, "method": cell.method.name, "fraction": cell.fraction,
                                "subset": cell.subset, "repeat": cell.repeat, "pretrain_rep": cell.pretrain_rep})
    rows = evaluate(best, data.ids(data.split.test))
    atomic_write_text(folder / "cell.json", json.dumps(
        {"key": cell.key, "method": cell.method.name, "fraction": cell.fraction, "subset": cell.subset,
         "repeat": cell.repeat, "pretrain_rep": cell.pretrain_rep, "labels": len(train), "round": cell.round,
         "seconds": time.time() - t, "machine": machine()}))
    write_metrics_csv(rows, folder / "metrics.csv")  # last: marks the cell finished
    for last in (folder / "run" / "last.pt", folder / "round1" / "last.pt"):
        last.unlink(missing_ok=True)
    return folder / "metrics.csv"


def _worker_init(threads: int) -> None:
    """A study worker: its share of the CPU threads (``make_fabric`` keeps an OMP_NUM_THREADS it finds)."""

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _stage_task(args: tuple) -> tuple[str, float]:
    stage, cfg, out = args
    t = time.time()
    run_stage(stage, cfg, out, progress=False, log=lambda *a: None)
    return stage.key, time.time() - t


def _cell_task(args: tuple) -> tuple[str, float]:
    cell, cfg, data, out = args
    t = time.time()
    run_cell(cell, cfg, data, out, progress=False, log=lambda *a: None)
    return cell.key, time.time() - t


def _run_pool(stages: list[Stage], todo: list[Cell], cfg: StudyConfig, data: StudyData, out: Path,
              workers: int, progress: bool, log: Log) -> None:
    """Stages, then cells, on up to ``workers`` processes sharing the CPU threads (on a CPU,
    several single-threaded trainings of small networks use the cores better than one
    multi-threaded one: docs/design.md). A phase with fewer tasks than workers gets fewer, wider
    workers. Pretraining stages go first, so that a supervised stage that starts from one rarely
    waits for it; the file locks make any wait safe."""

    stages = sorted(stages, key=lambda s: s.kind != "pretrain")
    phases = [("study stages", _stage_task, [(s, cfg, out) for s in stages]),
              ("study cells", _cell_task, [(c, cfg, data, out) for c in todo])]
    for title, task, args in phases:
        if not args:
            continue
        n = min(workers, len(args))
        threads = max(1, (os.cpu_count() or 1) // n)
        with mp.get_context("spawn").Pool(n, _worker_init, (threads,)) as pool, \
                progress_bar(title, len(args), progress) as advance:
            for key, seconds in pool.imap_unordered(task, args):
                if task is _stage_task:
                    log(f"stage {key}: done in {seconds:.0f} s")
                advance(1, info=key)


def run_study(cfg: StudyConfig, out: str | Path, shard_spec: tuple[int, int] = (0, 1), stage: str = "all",
              progress: bool = True, log: Log = print, report: bool = True, workers: int = 1,
              methods: tuple[str, ...] = ()) -> dict:
    """Run this shard's part of the study (``stage``: all, stages or cells) on ``workers``
    processes, then the report. ``methods`` (row names) runs only those rows' stages and cells,
    e.g. the rows a question needs first; the run folder stays the whole study's.

    Returns counts of cells run, skipped (already finished) and in this shard.
    """

    picked = only_methods(cfg, methods)  # before anything is written
    out = output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)  # temporary files of a killed run: never read as data
    added = check_same_study(cfg, out)
    if added:
        log(f"{out}: {len(added)} row(s) added to this run ({', '.join(added)}); the finished cells of the others are kept")
    check_weights(cfg, out)
    check_paths(cfg, out)
    atomic_write_text(out / "study.json", cfg.model_dump_json(indent=1))
    data = prepare(cfg, out, log)
    mine = ([s for k, s in enumerate(all_stages(cfg, picked)) if k % shard_spec[1] == shard_spec[0]]
            if stage in ("all", "stages") else [])
    mine_cells = [c for c in shard(cells(cfg, data.split), *shard_spec) if c.method.name in picked]
    todo = mine_cells if stage in ("all", "cells") else []
    left = [c for c in todo if not is_done(out, c)]
    counts = {"cells": len(mine_cells), "run": len(left),
              "skipped": len(todo) - len(left)}
    if workers > 1:
        _run_pool([s for s in mine if not stage_done(out, s)], left, cfg, data, out,
                  workers, progress, log)
    else:
        for s in mine:
            run_stage(s, cfg, out, progress, log)
        with progress_bar("study cells", len(todo), progress) as advance:
            for c in todo:
                if not is_done(out, c):
                    run_cell(c, cfg, data, out, progress=False, log=log)
                advance(1, info=c.key)
    if report:
        write_study_report(out, cfg, data)
    return counts
