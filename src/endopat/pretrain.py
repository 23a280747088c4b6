"""Pretraining a U-Net on unlabeled frames with an auxiliary task (:mod:`endopat.tasks`).

One loop serves every task: the frames are decoded once into a frame store, the task builds its
networks, and each step hands the task a batch of frames. Outputs in the run folder::

    frames/            frame store of the unlabeled source (decoded once; reused on resume)
    losses.csv         step and the scalars the task logs
    samples/step_N.png the task's sample figure for a fixed set of frames
    last.pt            training state (resume)
    pretrained.pt      endopat checkpoint (kind "pretrained") to fine-tune from
    losses.png         loss curves
    pretrain.json      source, frames, steps, task, config
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from endopat.checkpoints import save_checkpoint
from endopat.data.frames import build_store, probe_source
from endopat.data.store import FrameStore
from endopat.drawing import plot_pretrain_losses
from endopat.encoder_weights import check_weights_file
from endopat.io import atomic_write_text
from endopat.networks import arch_of
from endopat.runtime import TrainingRun, progress_bar
from endopat.tasks import get_task
from endopat.tasks.config import PretrainConfig


def open_frames(source: str | Path, run: TrainingRun, cfg: PretrainConfig) -> FrameStore:
    """Rank 0 decodes the source into ``run.out/frames`` (or finds it done); the others open it."""
    if run.is_main:
        with progress_bar("decoding frames", None, run.show) as advance:
            store = build_store(source, run.out / "frames", tuple(cfg.model.image_size), cfg.frame_stride,
                                cfg.max_frames, progress=lambda n: advance(1), fps=cfg.frame_fps,
                                crop_fov=cfg.crop_fov, skip_bad=cfg.skip_bad, log=run.log,
                                fit=cfg.model.fit)
    root = run.fabric.broadcast(str(store.root) if run.is_main else None, src=0)
    return store if run.is_main else FrameStore(root)


def pretrain(source: str | Path, out: str | Path, cfg: PretrainConfig | None = None,
             progress: bool = True, log=print) -> Path:
    """Pretrain a U-Net on ``source`` with ``cfg.task``; returns the checkpoint to fine-tune from.

    ``source`` is a video, a folder of videos, a folder of images or a frame store. Running again on
    the same ``out`` resumes from ``last.pt`` (and reuses the decoded frames).
    """
    cfg = cfg or PretrainConfig()
    task_cls = get_task(cfg.task)
    if not cfg.skip_bad:
        probe_source(source)  # bad input fails at once, before devices are set up
    if cfg.encoder_weights:
        check_weights_file(cfg.model, cfg.encoder_weights)  # and before any frame is decoded
    run = TrainingRun(cfg, out, ["step", *task_cls.fields], "losses.csv", progress, log, kind=f"{cfg.task} pretraining")
    store = open_frames(source, run, cfg)
    if len(store) < cfg.batch_size:
        log(f"note: {len(store)} frames < batch size {cfg.batch_size}; batches will be smaller")
    task = task_cls(cfg, run, store)  # its networks, restored when resuming
    loader = run.loader(task.dataset(store), batch_size=min(cfg.batch_size, len(store)), shuffle=True,
                        drop_last=True, num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    sample_frames = torch.from_numpy(np.stack([store[i] for i in
                                               np.linspace(0, len(store) - 1, min(4, len(store))).astype(int)]))

    def about(at: int) -> dict:  # provenance of the checkpoint, and pretrain.json
        return {"source": str(source), "frames": len(store), "steps": at, "task": cfg.task, **task.base_provenance(),
                **task.provenance(),
                "config": cfg.model_dump(mode="json")}

    def save(at: int) -> None:
        run.save(at)
        if run.is_main:
            save_checkpoint(run.out / "pretrained.pt", kind="pretrained", model_cfg=cfg.model,
                            state_dict=task.unet().state_dict(), task=cfg.task, in_channels=task.in_channels,
                            reinit=arch_of(cfg.model).modules(task.reinit), provenance=about(at))

    step, batches = run.position, run.batches(loader)  # epoch after epoch; a resumed run at its exact batch
    with run.progress(f"pretraining ({cfg.task})", cfg.steps) as advance:
        while step < cfg.steps:
            # the scalars stay on the device; every log_every steps their mean is logged (one sync)
            row = run.record({"step": (step := step + 1), **task.step(next(batches))}, cfg.log_every)
            advance(1, info=task.describe(row) if row else None)
            if run.is_main and step % cfg.sample_every == 0:
                task.samples(sample_frames, png := run.out / "samples" / f"step_{step:06d}.png")
                run.image("samples", png, step)
            if step % cfg.checkpoint_every == 0:
                save(step)
    save(step)
    if run.is_main:
        task.samples(sample_frames, png := run.out / "samples" / f"step_{step:06d}.png")
        run.image("samples", png, step)
        plot_pretrain_losses(run.history, run.out / "losses.png", task_cls.fields)
        atomic_write_text(run.out / "pretrain.json", json.dumps(about(step), indent=2))
    run.fabric.barrier()
    return run.out / "pretrained.pt"

