"""Fine-tuning for segmentation (the paper's section 2.2.2: binary instrument segmentation; any
number of classes from the data's :class:`endopat.labels.Labels`).

Variants are a matter of the ``init`` checkpoint:

* baseline: no ``init`` (random initialisation);
* PAT: ``init`` = a pretrained checkpoint (any auxiliary task); every layer is kept but the ones
  the task names (re-colorization, inpainting: the last; contrastive: the decoder it never trained);
* supervised pretraining (SOA): fine-tune on another labeled set first, then ``init`` = that model;
* PAT-Ext: re-colorization -> fine-tune on another labeled set -> fine-tune on the target.

When ``init`` is itself a segmenter of the same classes its last layer is kept too, unless
``reinit_last=True`` (a segmenter of other classes: the last layer is re-initialised to the data's
number of classes). Loss: cross-entropy (eq. 6; ``loss: dice_ce`` adds MONAI's soft Dice), the
ignore id left out; a binary model's background logit is held at 0 so that the output layer trains
one logit (:func:`endopat.networks.one_logit_head`); Adam; learning rate x0.1 after a
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
from pydantic import NonNegativeInt

from endopat import losses
from endopat.augment import augment_batch, draws
from endopat.best_epoch import improves
from endopat.checkpoints import Checkpoint, init_from, load_checkpoint, save_checkpoint
from endopat.config import FinetuneConfig, ModelConfig
from endopat.data.labeled import Sample, load_pairs
from endopat.drawing import plot_finetune_history
from endopat.encoder_weights import check_weights_file, load_encoder_weights, normalisation
from endopat.errors import EndopatError
from endopat.io import atomic_write_text, file_digest
from endopat.labels import Labels, common_labels
from endopat.metrics import image_scores
from endopat.networks import (
    ARCHS,
    arch_of,
    build_unet,
    one_logit_head,
    output_conv,
    prepare_input,
)
from endopat.runtime import TrainingRun
from endopat.training_state import GeneratorState
from endopat.semi.attach import SemiRun, attach

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_dice", "lr", "unlabeled_loss"]  # the last: semi only


class _Repeated(torch.utils.data.Dataset):
    """``(x, y)`` pairs repeated ``repeats`` times; items are ``(x, y, index)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, repeats: int = 1):
        self.x, self.y, self.repeats = x, y, max(1, repeats)

    def __len__(self) -> int:
        return len(self.x) * self.repeats

    def __getitem__(self, i: int):
        return self.x[i % len(self.x)], self.y[i % len(self.x)], i


def resolve_init(init: str | Path | None, cfg: FinetuneConfig) -> tuple[FinetuneConfig, Checkpoint | None]:
    """Load the init checkpoint and take its architecture and widths, so the networks match."""
    if init is None:
        return cfg, None
    ckpt = load_checkpoint(init)
    theirs = ckpt.model
    same = {k: getattr(theirs, k) for k in ("arch", "features", "decoder_channels")}
    if any(side % ARCHS[theirs.arch].multiple for side in cfg.model.image_size):
        same["image_size"] = theirs.image_size  # the config's size does not suit the checkpoint's architecture
    if any(getattr(cfg.model, k) != v for k, v in same.items()):
        cfg = cfg.model_copy(update={"model": ModelConfig.model_validate({**cfg.model.model_dump(), **same})})
    return cfg, ckpt


def check_start(cfg: FinetuneConfig, init: str | Path | None) -> None:
    """The init checkpoint and encoder weights file load (errors name the file), before any work."""
    if init is not None:
        load_checkpoint(init)
    if cfg.encoder_weights is not None:
        check_weights_file(cfg.model, cfg.encoder_weights)


def _at_most(train: list[Sample], n: int | None, seed: int) -> list[Sample]:
    if n is None or n >= len(train):
        return train
    rng = np.random.default_rng(seed)
    return [train[i] for i in sorted(rng.choice(len(train), n, replace=False))]


def _grid(cfg: ModelConfig, arch) -> tuple[int, int] | None:
    """A ViT checkpoint's token grid (its training size over the patch)."""
    return None if arch.patch is None else (cfg.image_size[0] // arch.patch, cfg.image_size[1] // arch.patch)


def _initial_model(cfg: FinetuneConfig, init: str | Path | None, ckpt: Checkpoint | None, reinit_last: bool | None,
                   run: TrainingRun, labels: Labels) -> tuple[torch.nn.Module, bool | None]:
    """The U-Net with one output per class: fresh, or loaded from ``init`` (every layer but the
    re-initialised ones); frozen modules fixed."""
    model, arch, lines = build_unet(cfg.model, out_channels=labels.num_classes), arch_of(cfg.model), []
    if cfg.encoder_weights is not None:
        lines += load_encoder_weights(model, cfg.model, cfg.encoder_weights, cfg.encoder_norm).lines()
    if ckpt is not None:
        if reinit_last is None:
            reinit_last = ckpt.kind != "segmenter" or ckpt.labels.names != labels.names
        # the task's own (its output layer; a decoder it never trained) and the config's
        reinit = arch.modules([*ckpt.reinit, *cfg.reinit_modules]) if reinit_last else ()
        report = init_from(model, ckpt.state_dict, reinit=reinit, first_layer=(arch.first_layer, *arch.input_layers),
                            source_grid=_grid(ckpt.model, arch), inflate=cfg.inflate)
        lines += [f"init: {init} (kind {ckpt.kind}" + (f", task {ckpt.task})" if ckpt.task else ")"),
                  *report.lines()]
    if lines and run.is_main:
        atomic_write_text(run.out / "init_report.txt", "\n".join(lines) + "\n")
        for line in lines:
            run.log(line)
    if labels.is_binary:
        one_logit_head(output_conv(model, arch))
    names = dict(model.named_children())
    for name in arch.modules(cfg.freeze):
        if name not in names:
            raise EndopatError(f"freeze: no U-Net module '{name}' (the modules: {', '.join(names)}; "
                               "or the groups encoder, decoder, last)")
        names[name].requires_grad_(False)
    return model, reinit_last


def _ignored(labels: Labels, *masks: np.ndarray) -> int | None:
    """The ignore id the loss leaves out: the labels', unless the target is binary and no pixel of the
    data carries it (then the paper's plain cross-entropy, as binary fine-tuning always had)."""
    if labels.ignore is None or (labels.is_binary and not any((m == labels.ignore).any() for m in masks)):
        return None
    return labels.ignore


def _train_epoch(model: torch.nn.Module, loader, opt, run: TrainingRun, cfg: FinetuneConfig, epoch: int,
                 semi: SemiRun | None = None, ignore: int | None = None) -> tuple[float, float]:
    """One pass over the (repeated) training set, each sample augmented by its own draw; the mean loss
    (with ``semi``: plus the ramped-up unlabeled loss of a batch of unlabeled frames per step, and the
    teacher updated after every step) and, of it, the mean weighted unlabeled term."""
    model.train()
    total, unlabeled, n = (torch.zeros((), device=run.device) for _ in range(3))
    for i, (x, y, idx) in enumerate(loader):
        x, y = augment_batch(x, y, cfg.augment, draws(cfg.seed, epoch, idx))
        loss = losses.supervised(model(x), y, cfg.loss, ignore)
        if semi is not None:
            batch = semi.unlabeled.next()
            batch = tuple(b.to(run.device) for b in batch) if isinstance(batch, tuple) else batch.to(run.device)
            term = semi.method.weight(epoch * len(loader) + i) * semi.method.loss(model, batch)
            loss = loss + term
            unlabeled = unlabeled + term.detach() * len(x)
        opt.zero_grad(set_to_none=True)
        run.fabric.backward(loss)
        opt.step()
        if semi is not None:
            semi.method.after_step(semi.net)
        total, n = total + loss.detach() * len(x), n + len(x)
    n = run.total(n)
    return float(run.total(total) / n), float(run.total(unlabeled) / n)


def _validate(model: torch.nn.Module, loader, run: TrainingRun, cfg: FinetuneConfig, labels: Labels,
              ignore: int | None) -> tuple[float, float]:
    """Mean per-image cross-entropy and Dice (argmax; multi-class: the mean over foreground classes)
    over the validation set, across ranks."""
    model.eval()
    vloss, vdice, vn = (torch.zeros((), device=run.device) for _ in range(3))
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            vloss += losses.supervised(logits.float(), y, cfg.loss, ignore, per_image=True).sum()
            vdice += image_scores(logits.argmax(1), y, labels)[0].sum()
            vn += len(x)
    vn = run.total(vn)
    return float(run.total(vloss) / vn), float(run.total(vdice) / vn)


def _loaders(run: TrainingRun, cfg: FinetuneConfig, x_train, y_train, x_val, y_val):
    """The training loader (shuffled by a generator the run saves) and the validation loader."""
    # few labels: an "epoch" of one batch would make the plateau rule meaningless, so a small set is
    # repeated; each repeat is a sample index of its own (its own augmentation)
    as_input = lambda x: prepare_input(torch.from_numpy(x), cfg.model.input)  # noqa: E731
    train_ds = _Repeated(as_input(x_train), torch.from_numpy(y_train), -(-cfg.min_samples_per_epoch // len(x_train)))
    shuffle = run.track("shuffle", GeneratorState(torch.Generator().manual_seed(cfg.seed))).generator
    train_loader = run.loader(train_ds, batch_size=min(cfg.batch_size, len(train_ds)), shuffle=True,
                              generator=shuffle, num_workers=cfg.num_workers)
    val_loader = run.loader(torch.utils.data.TensorDataset(as_input(x_val), torch.from_numpy(y_val)),
                            batch_size=max(cfg.batch_size, 16), shuffle=False, num_workers=cfg.num_workers)
    return train_loader, val_loader


def _provenance(cfg: FinetuneConfig, n_train: int, n_val: int, init, init_ckpt: Checkpoint | None,
                reinit_last: bool | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """What the segmenter checkpoint records about its run: data, start, settings, weights file."""
    meta = {"train_images": n_train, "val_images": n_val, "init": str(init) if init else None,
            "reinit_last": reinit_last, "finetune": cfg.model_dump(mode="json"), **(extra or {})}
    if cfg.encoder_weights:  # the file's digest and the input normalisation its first layer was folded from

        meta["encoder_weights"] = {"file": cfg.encoder_weights, "sha256": file_digest(cfg.encoder_weights),
                                   "rgb_normalisation": normalisation(cfg.encoder_norm)}
    elif init_ckpt is not None and "encoder_weights" in init_ckpt.provenance:
        meta["encoder_weights"] = init_ckpt.provenance["encoder_weights"]  # via pretraining
    return meta


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
    cfg, init_ckpt = resolve_init(init, cfg or FinetuneConfig())
    train = _at_most(list(train), cfg.max_labels, cfg.seed)
    labels = common_labels([*{s.labels for s in [*train, *val]}], "the training and validation data")
    size = tuple(cfg.model.image_size)
    x_train, y_train = load_pairs(train, size, cfg.skip_bad, log, cfg.model.fit)  # bad input fails before set-up
    x_val, y_val = load_pairs(list(val), size, cfg.skip_bad, log, cfg.model.fit)
    ignore = _ignored(labels, y_train, y_val)
    run = TrainingRun(cfg, out, HISTORY_FIELDS, "history.csv", progress, log, kind="fine-tuning")
    net, reinit_last = _initial_model(cfg, init, init_ckpt, reinit_last, run, labels)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    model, opt = run.setup("model", net, opt)
    sched = run.track("sched", torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr))

    train_loader, val_loader = _loaders(run, cfg, x_train, y_train, x_val, y_val)
    semi = attach(cfg, net, run)
    meta = _provenance(cfg, len(train), len(val), init, init_ckpt, reinit_last, provenance)

    epoch, best_val, bad_epochs = run.position, run.saved("best_val", float, float("inf")), run.saved("bad_epochs", NonNegativeInt, 0)
    run.restore_rng()  # a resumed run: every generator as at its last save
    with run.progress("fine-tuning", cfg.epochs) as advance:
        while epoch < cfg.epochs and not (cfg.early_stop_patience and bad_epochs >= cfg.early_stop_patience):
            train_loss, unlabeled_loss = _train_epoch(model, train_loader, opt, run, cfg, epoch, semi, ignore)
            val_loss, val_dice = _validate(model, val_loader, run, cfg, labels, ignore)
            sched.step(val_loss)  # lr x0.1 after a plateau of the validation loss
            epoch += 1
            run.record({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice,
                        "lr": opt.param_groups[0]["lr"], **({"unlabeled_loss": unlabeled_loss} if semi else {})})
            if improves(val_loss, best_val):  # the checkpoint kept: the best validation loss
                best_val, bad_epochs = val_loss, 0
                if run.is_main:
                    save_checkpoint(run.out / "best.pt", kind="segmenter", model_cfg=cfg.model,
                                    state_dict=net.state_dict(), threshold=cfg.threshold, labels=labels.to_dict(),
                                    provenance=dict(meta, epoch=epoch, val_loss=val_loss, val_dice=val_dice))
            else:
                bad_epochs += 1
            run.save(epoch, best_val=best_val, bad_epochs=bad_epochs)
            advance(1, info=f"train {train_loss:.3f} val {val_loss:.3f} Dice {val_dice:.3f} "
                            f"lr {opt.param_groups[0]['lr']:.0e}")
    run.save(epoch, best_val=best_val, bad_epochs=bad_epochs)
    if run.is_main:
        plot_finetune_history(run.history, run.out / "history.png", title=run.out.name)
    run.fabric.barrier()
    return run.out / "best.pt"
