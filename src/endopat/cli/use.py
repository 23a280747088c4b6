"""Commands that use a model: evaluate, predict, suggest, export, and weights (what a file is)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from endopat.choose import STRATEGIES
from endopat.cli.app import (
    ArchOpt,
    ClassMapOpt,
    ClassesOpt,
    EncoderNormOpt,
    MaskThresholdOpt,
    ProgressOpt,
    app,
    echo,
    mask_format_of,
)
from endopat.errors import EndopatError


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="segmenter checkpoint (best.pt)"),
    data: Path = typer.Option(..., "--data", "-d", help="labeled folder (images/ + masks/, or with test/)"),
    out: Path = typer.Option(..., "--out", "-o", help="per-image metrics CSV"),
    split: str = typer.Option("test", "--split-name", help="which split: a folder of DATA, or a part of --split"),
    split_file: Optional[Path] = typer.Option(None, "--split", help="split JSON from `endopat split`"),
    layout: Optional[str] = typer.Option(None),
    mask_threshold: float = MaskThresholdOpt,
    class_map: Optional[str] = ClassMapOpt,
    classes: Optional[str] = ClassesOpt,
    device: str = typer.Option("cpu"),
) -> None:
    """Per-image Dice and IoU, with mean, median and IQR."""
    from endopat.data.splits import part_to_score
    from endopat.evaluate import evaluate as run
    from endopat.evaluate import class_summaries, summarize, write_metrics_csv
    from endopat.io import output_file

    output_file(out)
    samples = part_to_score(data, split, split_file, model, layout, mask_format_of(mask_threshold, class_map, classes), echo)
    rows = run(model, samples, device=device)
    write_metrics_csv(rows, out)
    for metric, s in summarize(rows).items():
        echo(f"{metric}: mean {s['mean']:.3f}  median {s['median']:.3f}  "
              f"IQR [{s['q1']:.3f} {s['q3']:.3f}]  n={s['n']}")
    names = [k[len("dice_"):] for k in rows[0] if k.startswith("dice_")] if rows else []
    if names:  # a multi-class model: each class on the images that show it
        echo("per class (images whose truth shows it):")
        for name, s in class_summaries(rows, names).items():
            echo(f"  {name}: Dice {s['dice']['mean']:.3f}  IoU {s['iou']['mean']:.3f}  n={s['dice']['n']}")
    echo(f"per-image metrics: {out}")


@app.command()
def predict(
    model: Path = typer.Argument(..., help="segmenter checkpoint (.pt) or exported model (.onnx)"),
    source: Path = typer.Argument(..., help="an image, a video, or a folder of them"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    threshold: Optional[float] = typer.Option(None, help="foreground probability threshold (default: the model's)"),
    batch_size: int = typer.Option(8),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ... (PyTorch models)"),
    save_masks: bool = typer.Option(False, "--save-masks", help="videos: also write every frame's mask"),
    backend: str = typer.Option("auto", help="auto (onnxruntime on CPU when installed, else PyTorch), "
                                "onnx or torch"),
    progress: bool = ProgressOpt,
) -> None:
    """Segment an image, a video, or a folder of them; a killed run resumes.

    Images: masks (multi-class: class ids, overlays, areas.csv); each video: an overlay video and a
    per-frame CSV."""
    from endopat.predict import predict as run

    result = run(model, source, out, batch_size, threshold, device, save_masks, progress, backend, echo)
    if result["masks"]:
        echo(f"{len(result['masks'])} masks -> {out / 'masks'}")
    for video in result["videos"]:
        echo(f"{video['frames']} frames -> {video['overlay']} and {video['csv']}")


@app.command()
def suggest(
    source: Path = typer.Argument(..., help="a video, a folder of videos or images, or a frame store"),
    n: int = typer.Option(..., "-n", help="how many frames to choose"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    model: Optional[Path] = typer.Option(None, help="checkpoint whose encoder embeds the frames (any "
                                         "pretrained one or a segmenter; a segmenter also gives uncertainty "
                                         "and pre-annotations)"),
    labeled: Optional[Path] = typer.Option(None, help="frames already labeled: excluded, and the start of "
                                           "the diversity search"),
    strategy: str = typer.Option("diverse", help=f"{', '.join(STRATEGIES)} (endopat.choose; diverse: k-center)"),
    seed: int = typer.Option(0),
    fps: float = typer.Option(1.0, help="video frames sampled per second"),
    min_gap: float = typer.Option(2.0, help="seconds between two chosen frames of one video"),
    device: str = typer.Option("cpu"),
    progress: bool = ProgressOpt,
) -> None:
    """Choose the frames to label next (diversity, uncertainty); write them with CVAT and Label Studio imports."""
    from endopat.suggest import suggest as run

    result = run(source, n, out, model, labeled, strategy, seed, fps, min_gap, device=device,
                 progress=progress, log=echo)
    echo(f"chose {result['chosen']} of {result['candidates']} frames ({strategy}): {result['ranking']}; "
          f"imports in {out / 'cvat'} and {out / 'label_studio'}")


@app.command()
def weights(
    file: Path = typer.Argument(..., help="an encoder weights file (.pth/.pt/.bin/.safetensors)"),
    arch: Optional[str] = ArchOpt,
    encoder_norm: Optional[str] = EncoderNormOpt,
) -> None:
    """Say what an encoder weights file is and which architectures it loads onto (exit 1 if none).

    Its layout, and what of it is used, adapted, left out or kept fresh (nothing is trained)."""
    from endopat.encoder_weights import which_arch
    from endopat.io import file_digest

    loads, refused = which_arch(file, arch, encoder_norm or "imagenet")
    echo(f"{file}: sha256 {file_digest(file)}")
    for report in loads.values():
        for line in report.lines():
            echo("  " + line)
    if not loads:
        for name, why in refused.items():
            echo(f"  not {name}: {why}")
        raise typer.Exit(1)


@app.command()
def export(
    model: Path = typer.Argument(..., help="segmenter checkpoint (.pt)"),
    onnx_out: Path = typer.Option(..., "--onnx", help="output .onnx file"),
    opset: int = typer.Option(17),
) -> None:
    """Export a segmenter to ONNX (dynamic batch and image size; metadata for preprocessing)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise EndopatError("ONNX export needs the 'export' extra: pip install 'endopat[export]'") from None
    from endopat.export import export_onnx

    echo(f"exported: {export_onnx(model, onnx_out, opset)}")
