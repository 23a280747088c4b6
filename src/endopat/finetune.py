"""Fine-tuning for binary instrument segmentation (the paper's section 2.2.2).

Variants are a matter of the ``init`` checkpoint:

* baseline: no ``init`` (random initialisation);
* PAT: ``init`` = a re-colorization generator; every layer is kept but the last, re-initialised;
* supervised pretraining (SOA): fine-tune on another labeled set first, then ``init`` = that model;
* PAT-Ext: re-colorization -> fine-tune on another labeled set -> fine-tune on the target.

When ``init`` is itself a segmenter (same task, same two classes) its last layer is kept too, unless
``reinit_last=True``. Loss: two-class cross-entropy (eq. 6); Adam; learning rate x0.1 after a
``plateau_patience``-epoch validation-loss plateau; the checkpoint kept is the best on validation
loss; training stops early after ``early_stop_patience`` epochs without a new best. A training set
smaller than ``min_samples_per_epoch`` is repeated within an epoch, so that 25 labels and 400 labels
both get epochs of a comparable number of steps and the 10-epoch plateau rule means the same.

Outputs in the run folder: ``best.pt`` (segmenter checkpoint), ``last.pt`` (resume state),
``history.csv`` and ``history.png``, ``init_report.txt`` when initialised from a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from endopat import losses
from endopat.augment import augment_batch, draws
from endopat.checkpoints import (InitReport, init_from, load_checkpoint, load_weights_only,
                                 model_config, save_atomic, save_checkpoint)
from endopat.config import FinetuneConfig
from endopat.data.labeled import Sample, load_pairs
from endopat.errors import EndopatError
from endopat.io import atomic_write_csv, atomic_write_text
from endopat.networks import build_unet, prepare_input
from endopat.runtime import make_fabric, prepare_module, progress_bar

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_dice", "lr"]


def _dice_per_image(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pred = logits.argmax(1).bool()
    mask = mask.bool()
    inter = (pred & mask).flatten(1).sum(1).float()
    total = (pred.flatten(1).sum(1) + mask.flatten(1).sum(1)).float()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


class _Repeated(torch.utils.data.Dataset):
    """``(x, y)`` pairs repeated ``repeats`` times; items are ``(x, y, index)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, repeats: int = 1):
        self.x, self.y, self.repeats = x, y, max(1, repeats)

    def __len__(self) -> int:
        return len(self.x) * self.repeats

    def __getitem__(self, i: int):
        return self.x[i % len(self.x)], self.y[i % len(self.x)], i


def resolve_init(init: str | Path | None, cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict | None]:
    """Load the init checkpoint and take its U-Net widths, so the architectures match."""
    if init is None:
        return cfg, None
    ckpt = load_checkpoint(init)
    features = model_config(ckpt).features
    if tuple(features) != tuple(cfg.model.features):
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"features": features})})
    return cfg, ckpt


def finetune(
    train: Sequence[Sample],
    val: Sequence[Sample],
    out: str | Path,
    cfg: FinetuneConfig | None = None,
    init: str | Path | None = None,
    reinit_last: bool | None = None,
    progress: bool = True,
    log=print,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Train a segmenter on ``train`` (best on ``val``); returns the path of ``best.pt``."""
    cfg = cfg or FinetuneConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, init_ckpt = resolve_init(init, cfg)
    size = tuple(cfg.model.image_size)

    train = list(train)
    if cfg.max_labels is not None and cfg.max_labels < len(train):
        rng = np.random.default_rng(cfg.seed)
        train = [train[i] for i in sorted(rng.choice(len(train), cfg.max_labels, replace=False))]
    x_train, y_train = load_pairs(train, size, cfg.skip_bad, log)  # bad input fails before set-up
    x_val, y_val = load_pairs(list(val), size, cfg.skip_bad, log)
    fabric = make_fabric(cfg)

    model = build_unet(cfg.model)
    report: InitReport | None = None
    if init_ckpt is not None:
        if reinit_last is None:
            reinit_last = init_ckpt["kind"] != "segmenter"
        reinit = tuple(cfg.reinit_modules) if reinit_last else ()
        report = init_from(model, init_ckpt["state_dict"], reinit=reinit)
        if fabric.is_global_zero:
            lines = [f"init: {init} (kind {init_ckpt['kind']})", *report.lines()]
            atomic_write_text(out / "init_report.txt", "\n".join(lines) + "\n")
            for line in lines:
                log(line)
    names = dict(model.named_children())
    for name in cfg.freeze:
        if name not in names:
            raise EndopatError(f"freeze: no U-Net module '{name}' (the modules: {', '.join(names)})")
        names[name].requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr)

    epoch, best_val, bad_epochs, history = 0, float("inf"), 0, []
    state_path = out / "last.pt"
    if state_path.is_file():
        state = load_weights_only(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        epoch, best_val, bad_epochs = int(state["epoch"]), float(state["best_val"]), int(state["bad_epochs"])
        history = [dict(r) for r in state["history"]]
        log(f"resuming from {state_path} after epoch {epoch}")
    net = model  # the plain module: its state_dict keys do not change with compile/DDP
    model, opt = fabric.setup(prepare_module(model, cfg), opt)

    def as_input(x: np.ndarray) -> torch.Tensor:
        return prepare_input(torch.from_numpy(x), cfg.model.input)

    # few labels: an "epoch" of one batch would make the plateau rule meaningless, so a small set is
    # repeated; each repeat is a sample index of its own (its own augmentation)
    repeats = -(-cfg.min_samples_per_epoch // len(x_train))  # ceil
    train_ds = _Repeated(as_input(x_train), torch.from_numpy(y_train), repeats)
    val_ds = torch.utils.data.TensorDataset(as_input(x_val), torch.from_numpy(y_val))
    g = torch.Generator().manual_seed(cfg.seed)
    train_loader = fabric.setup_dataloaders(torch.utils.data.DataLoader(
        train_ds, batch_size=min(cfg.batch_size, len(train_ds)), shuffle=True, generator=g,
        num_workers=cfg.num_workers))
    val_loader = fabric.setup_dataloaders(torch.utils.data.DataLoader(
        val_ds, batch_size=max(cfg.batch_size, 16), shuffle=False, num_workers=cfg.num_workers))

    meta = {"train_images": len(train), "val_images": len(val), "init": str(init) if init else None,
            "reinit_last": reinit_last, "finetune": cfg.model_dump(mode="json"), **(provenance or {})}

    def save_state() -> None:
        if fabric.is_global_zero:
            save_atomic({"epoch": epoch, "best_val": best_val, "bad_epochs": bad_epochs,
                         "model": net.state_dict(), "opt": opt.state_dict(),
                         "sched": sched.state_dict(), "history": history}, state_path)
            atomic_write_csv(out / "history.csv", HISTORY_FIELDS, history)

    with progress_bar("fine-tuning", cfg.epochs, progress and fabric.is_global_zero,
                      completed=epoch) as advance:
        while epoch < cfg.epochs:
            if cfg.early_stop_patience is not None and bad_epochs >= cfg.early_stop_patience:
                break
            model.train()
            total, n = torch.zeros((), device=fabric.device), torch.zeros((), device=fabric.device)
            for x, y, idx in train_loader:
                x, y = augment_batch(x, y, cfg.augment, draws(cfg.seed, epoch, idx))
                loss = losses.segmentation(model(x), y)
                opt.zero_grad(set_to_none=True)
                fabric.backward(loss)
                opt.step()
                total += loss.detach() * len(x)
                n += len(x)
            train_loss = float(fabric.all_reduce(total, reduce_op="sum") / fabric.all_reduce(n, reduce_op="sum"))
            model.eval()
            vloss, vdice, vn = (torch.zeros((), device=fabric.device) for _ in range(3))
            with torch.no_grad():
                for x, y in val_loader:
                    logits = model(x)
                    vloss += torch.nn.functional.cross_entropy(logits.float(), y.long(), reduction="none").mean((1, 2)).sum()
                    vdice += _dice_per_image(logits, y).sum()
                    vn += len(x)
            vn = fabric.all_reduce(vn, reduce_op="sum")
            val_loss = float(fabric.all_reduce(vloss, reduce_op="sum") / vn)
            val_dice = float(fabric.all_reduce(vdice, reduce_op="sum") / vn)
            sched.step(val_loss)
            epoch += 1
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                            "val_dice": val_dice, "lr": opt.param_groups[0]["lr"]})
            if val_loss < best_val - 1e-6:
                best_val, bad_epochs = val_loss, 0
                if fabric.is_global_zero:
                    save_checkpoint(out / "best.pt", kind="segmenter", model_cfg=cfg.model,
                                    state_dict=net.state_dict(), threshold=cfg.threshold,
                                    provenance=dict(meta, epoch=epoch, val_loss=val_loss, val_dice=val_dice))
            else:
                bad_epochs += 1
            save_state()
            advance(1, info=f"train {train_loss:.3f} val {val_loss:.3f} Dice {val_dice:.3f} "
                            f"lr {opt.param_groups[0]['lr']:.0e}")
    save_state()
    if fabric.is_global_zero:
        from endopat.report.figures import plot_finetune_history

        plot_finetune_history(history, out / "history.png", title=out.name)
    fabric.barrier()
    return out / "best.pt"
