"""The ``endopat`` command line: a thin typer layer over the Python API.

Every command validates its input at the edge; an :class:`~endopat.errors.EndopatError` (bad file,
bad config key, ...) is printed on one line and exits with code 2, without a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from endopat.errors import EndopatError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="PAT: pretrain a U-Net by GAN re-colorization of unlabeled endoscopic video, "
    "then fine-tune it for instrument segmentation with few labels.",
)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config (keys as in endopat.config)")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="show progress bars")


def _size(value: Optional[int]) -> Optional[tuple[int, int]]:
    return None if value is None else (value, value)


def _echo(msg: str) -> None:
    typer.echo(msg)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="output folder"),
    seed: int = typer.Option(0, help="random seed: the same seed gives the same data"),
    site: str = typer.Option("target", help="domain: target, other (another hospital), natural"),
    videos: int = typer.Option(8, help="labeled videos (split by video into train/val/test)"),
    unlabeled_videos: int = typer.Option(8, help="extra videos without labels"),
    frames: int = typer.Option(48, help="frames per video"),
    label_every: int = typer.Option(4, help="label every n-th frame of a labeled video"),
    size: int = typer.Option(256, help="frame size in pixels (square)"),
    progress: bool = ProgressOpt,
) -> None:
    """Generate synthetic endoscopy: unlabeled mp4 videos and labeled frames with exact masks."""
    from endopat.data.synth import SITES, SynthSpec, generate
    from endopat.runtime import progress_bar

    if site not in SITES:
        raise EndopatError(f"unknown site '{site}' (choose from {', '.join(SITES)})")
    spec = SynthSpec(site=site, seed=seed, size=size, videos=videos, unlabeled_videos=unlabeled_videos,
                     frames=frames, label_every=label_every)
    try:
        from endopat.data.synth import video_roles

        video_roles(videos)
    except ValueError as err:
        raise EndopatError(f"--videos {videos}: {err}") from None
    with progress_bar("rendering videos", videos + unlabeled_videos, progress) as advance:
        manifest = generate(out, spec, progress=lambda i, n: advance(1))
    counts = {}
    for v in manifest["videos"]:
        counts[v["role"]] = counts.get(v["role"], 0) + v["labeled_frames"]
    _echo(f"wrote {len(manifest['videos'])} videos to {out}; labeled frames: "
          + ", ".join(f"{k} {n}" for k, n in counts.items() if k != "unlabeled"))


@app.command()
def pretrain(
    unlabeled: Path = typer.Option(..., "--unlabeled", "-u", help="video, folder of videos or images, or frame store"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (resumes if it holds a run)"),
    config: Optional[Path] = ConfigOpt,
    steps: Optional[int] = typer.Option(None, help="GAN steps"),
    batch_size: Optional[int] = typer.Option(None),
    image_size: Optional[int] = typer.Option(None, help="train at this square size (multiple of 16)"),
    frame_stride: Optional[int] = typer.Option(None, help="keep every n-th video frame"),
    devices: Optional[str] = typer.Option(None, help="devices per node: 1, 2, 'auto', ..."),
    num_nodes: Optional[int] = typer.Option(None),
    strategy: Optional[str] = typer.Option(None, help="auto, ddp, ..."),
    precision: Optional[str] = typer.Option(None, help="32, bf16-mixed, 16-mixed"),
    accelerator: Optional[str] = typer.Option(None, help="auto, cpu, gpu"),
    seed: Optional[int] = typer.Option(None),
    progress: bool = ProgressOpt,
) -> None:
    """Pretrain a U-Net by GAN re-colorization (L -> a,b) of unlabeled frames."""
    from endopat.config import PretrainConfig, load_config
    from endopat.pretrain import pretrain as run

    cfg = load_config(PretrainConfig, config, steps=steps, batch_size=batch_size,
                      model__image_size=_size(image_size), frame_stride=frame_stride,
                      devices=_devices(devices), num_nodes=num_nodes, strategy=strategy,
                      precision=precision, accelerator=accelerator, seed=seed)
    ckpt = run(unlabeled, out, cfg, progress=progress, log=_echo)
    _echo(f"generator checkpoint: {ckpt}")


def _devices(value: Optional[str]):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@app.command()
def finetune(
    data: Path = typer.Option(..., "--data", "-d", help="labeled source with train/ and val/ folders"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (resumes if it holds a run)"),
    init: Optional[Path] = typer.Option(None, help="checkpoint to start from (PAT: a generator)"),
    config: Optional[Path] = ConfigOpt,
    epochs: Optional[int] = typer.Option(None),
    max_labels: Optional[int] = typer.Option(None, help="use at most this many training images"),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    image_size: Optional[int] = typer.Option(None),
    input_mode: Optional[str] = typer.Option(None, "--input", help="segmenter input: L or Lab"),
    reinit_last: Optional[bool] = typer.Option(None, "--reinit-last/--keep-last",
                                               help="default: re-init after a generator, keep after a segmenter"),
    devices: Optional[str] = typer.Option(None),
    num_nodes: Optional[int] = typer.Option(None),
    strategy: Optional[str] = typer.Option(None),
    precision: Optional[str] = typer.Option(None),
    accelerator: Optional[str] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    progress: bool = ProgressOpt,
) -> None:
    """Fine-tune for binary instrument segmentation (baseline without --init, PAT with one)."""
    from endopat.config import FinetuneConfig, load_config
    from endopat.data.labeled import open_labeled
    from endopat.finetune import finetune as run

    cfg = load_config(FinetuneConfig, config, epochs=epochs, max_labels=max_labels,
                      batch_size=batch_size, lr=lr, model__image_size=_size(image_size),
                      model__input=input_mode, devices=_devices(devices), num_nodes=num_nodes,
                      strategy=strategy, precision=precision, accelerator=accelerator, seed=seed)
    splits = open_labeled(data)
    for needed in ("train", "val"):
        if needed not in splits:
            raise EndopatError(f"{data}: no {needed}/ folder (expected train/ and val/ with images/ + masks/)")
    best = run(splits["train"], splits["val"], out, cfg, init=init, reinit_last=reinit_last,
               progress=progress, log=_echo)
    _echo(f"best checkpoint: {best}")


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="segmenter checkpoint (best.pt)"),
    data: Path = typer.Option(..., "--data", "-d", help="labeled folder (images/ + masks/, or with test/)"),
    out: Path = typer.Option(..., "--out", "-o", help="per-image metrics CSV"),
    split: str = typer.Option("test", help="split to use when DATA has split folders"),
    device: str = typer.Option("cpu"),
) -> None:
    """Per-image Dice and IoU, with mean, median and IQR."""
    from endopat.data.labeled import open_labeled
    from endopat.evaluate import evaluate as run
    from endopat.evaluate import summarize, write_metrics_csv

    splits = open_labeled(data)
    samples = splits.get(split, splits.get("all"))
    if samples is None:
        raise EndopatError(f"{data}: no {split}/ folder")
    rows = run(model, samples, device=device)
    write_metrics_csv(rows, out)
    for metric, s in summarize(rows).items():
        _echo(f"{metric}: mean {s['mean']:.3f}  median {s['median']:.3f}  "
              f"IQR [{s['q1']:.3f} {s['q3']:.3f}]  n={s['n']}")
    _echo(f"per-image metrics: {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o"),
    quick: bool = typer.Option(False, "--quick", help="a ~2-minute version"),
    seed: int = typer.Option(0),
    progress: bool = ProgressOpt,
) -> None:
    """Synthetic data -> pretrain -> baseline vs PAT fine-tuning -> evaluation -> report."""
    from endopat.demo import run_demo

    report = run_demo(out, quick=quick, seed=seed, progress=progress, log=_echo)
    _echo(f"report: {report}")


def main() -> None:
    try:
        app()
    except EndopatError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished work is saved; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
