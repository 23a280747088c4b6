"""Commands that train: pretrain, finetune."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from endopat.cli.app import (
    ArchOpt,
    ClassMapOpt,
    ClassesOpt,
    ConfigOpt,
    EncoderNormOpt,
    EncoderWeightsOpt,
    MaskThresholdOpt,
    ProgressOpt,
    app,
    devices_of,
    echo,
    mask_format_of,
    size_of,
    str_or_none,
)


@app.command()
def pretrain(
    unlabeled: Path = typer.Option(..., "--unlabeled", "-u", help="video, folder of videos or images, or frame store"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (resumes if it holds a run)"),
    task: Optional[str] = typer.Option(None, help="auxiliary task: recolor (default), inpaint, contrastive"),
    config: Optional[Path] = ConfigOpt,
    steps: Optional[int] = typer.Option(None, help="training steps"),
    batch_size: Optional[int] = typer.Option(None),
    image_size: Optional[str] = typer.Option(None, help="train at this size: HxW or one number for a "
                                             "square (multiples of 16 for basic_unet, 32 for encoder U-Nets, the patch for ViTs)"),
    arch: Optional[str] = ArchOpt,
    encoder_weights: Optional[Path] = EncoderWeightsOpt,
    encoder_norm: Optional[str] = EncoderNormOpt,
    frame_stride: Optional[int] = typer.Option(None, help="keep every n-th video frame"),
    frame_fps: Optional[float] = typer.Option(None, help="sample videos at this many frames/s"),
    crop_fov: Optional[bool] = typer.Option(None, "--crop-fov/--no-crop-fov",
                                            help="cut the black border around the field of view"),
    devices: Optional[str] = typer.Option(None, help="devices per node: 1, 2, 'auto', ..."),
    num_nodes: Optional[int] = typer.Option(None),
    strategy: Optional[str] = typer.Option(None, help="auto, ddp, ..."),
    precision: Optional[str] = typer.Option(None, help="32, bf16-mixed, 16-mixed"),
    accelerator: Optional[str] = typer.Option(None, help="auto, cpu, gpu"),
    seed: Optional[int] = typer.Option(None),
    skip_bad: Optional[bool] = typer.Option(None, "--skip-bad/--no-skip-bad",
                                            help="skip unreadable videos/images (logged, counted)"),
    progress: bool = ProgressOpt,
) -> None:
    """Pretrain a U-Net on unlabeled frames with an auxiliary task (default: GAN re-colorization)."""
    from endopat.config import load_config
    from endopat.pretrain import pretrain as run
    from endopat.tasks.config import PretrainConfig

    cfg = load_config(PretrainConfig, config, task=task, steps=steps, batch_size=batch_size,
                      model__image_size=size_of(image_size), model__arch=arch,
                      encoder_weights=str_or_none(encoder_weights), encoder_norm=encoder_norm, frame_stride=frame_stride,
                      frame_fps=frame_fps, crop_fov=crop_fov,
                      devices=devices_of(devices), num_nodes=num_nodes, strategy=strategy,
                      precision=precision, accelerator=accelerator, seed=seed, skip_bad=skip_bad)
    ckpt = run(unlabeled, out, cfg, progress=progress, log=echo)
    echo(f"pretrained checkpoint ({cfg.task}): {ckpt}")


@app.command()
def finetune(
    data: Path = typer.Option(..., "--data", "-d", help="labeled source (train/ + val/ folders, or any layout with --split)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (resumes if it holds a run)"),
    split_file: Optional[Path] = typer.Option(None, "--split", help="split JSON from `endopat split`"),
    fraction: Optional[str] = typer.Option(None, help="label fraction of the split, e.g. 1/8 (with --split, or a folder endopat splits)"),
    subset: int = typer.Option(0, help="with --split and --fraction: which disjoint subset"),
    layout: Optional[str] = typer.Option(None, help="dataset layout (default: detected)"),
    mask_threshold: float = MaskThresholdOpt,
    class_map: Optional[str] = ClassMapOpt,
    classes: Optional[str] = ClassesOpt,
    init: Optional[Path] = typer.Option(None, help="checkpoint to start from (PAT: a pretrained one)"),
    config: Optional[Path] = ConfigOpt,
    epochs: Optional[int] = typer.Option(None),
    max_labels: Optional[int] = typer.Option(None, help="use at most this many training images"),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    image_size: Optional[str] = typer.Option(None, help="HxW or one number (multiples of 16 for basic_unet, 32 for encoder U-Nets, the patch for ViTs)"),
    input_mode: Optional[str] = typer.Option(None, "--input", help="segmenter input: L or Lab"),
    arch: Optional[str] = ArchOpt,
    encoder_weights: Optional[Path] = EncoderWeightsOpt,
    encoder_norm: Optional[str] = EncoderNormOpt,
    reinit_last: Optional[bool] = typer.Option(None, "--reinit-last/--keep-last",
                                               help="default: re-init after pretraining, keep after a segmenter"),
    devices: Optional[str] = typer.Option(None),
    num_nodes: Optional[int] = typer.Option(None),
    strategy: Optional[str] = typer.Option(None),
    precision: Optional[str] = typer.Option(None),
    accelerator: Optional[str] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    skip_bad: Optional[bool] = typer.Option(None, "--skip-bad/--no-skip-bad", help="skip unreadable samples"),
    semi: Optional[str] = typer.Option(None, "--semi", help="semi-supervised: mean_teacher, fixmatch or temporal "
                                       "(endopat.semi), on the frames of --unlabeled"),
    unlabeled: Optional[Path] = typer.Option(None, "--unlabeled", help="with --semi: a video, a folder of videos or "
                                             "images, or a frame store"),
    progress: bool = ProgressOpt,
) -> None:
    """Fine-tune a segmenter: the baseline without --init, PAT with one, semi-supervised with --semi.

    Binary instruments, or the data's classes (a classes.txt, --classes, --class-map); with --semi
    the unlabeled frames are used while fine-tuning."""
    from endopat.config import FinetuneConfig, load_config
    from endopat.data.splits import train_val
    from endopat.finetune import check_start
    from endopat.finetune import finetune as run

    cfg = load_config(FinetuneConfig, config, epochs=epochs, max_labels=max_labels,
                      batch_size=batch_size, lr=lr, model__image_size=size_of(image_size),
                      model__input=input_mode, model__arch=arch, encoder_weights=str_or_none(encoder_weights),
                      encoder_norm=encoder_norm, devices=devices_of(devices), num_nodes=num_nodes,
                      strategy=strategy, precision=precision, accelerator=accelerator, seed=seed,
                      skip_bad=skip_bad, semi__method=semi, semi__unlabeled=str_or_none(unlabeled))
    check_start(cfg, init)  # a bad --init or --encoder-weights fails before the split is written
    train, val = train_val(data, out, split_file, fraction, subset, layout, cfg.seed,
                           mask_format_of(mask_threshold, class_map, classes), log=echo)
    best = run(train, val, out, cfg, init=init, reinit_last=reinit_last, progress=progress, log=echo)
    echo(f"best checkpoint: {best}")
