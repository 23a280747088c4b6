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
ArchOpt = typer.Option(None, help="U-Net: basic_unet (the paper's), resnet18/34/50, efficientnet-b0..b4")
EncoderWeightsOpt = typer.Option(None, "--encoder-weights", help="local .pth/.safetensors encoder weights "
                                 "(e.g. torchvision's ImageNet ResNet) for an encoder --arch")
MaskThresholdOpt = typer.Option(0.5, "--mask-threshold", help="grey masks (JPEG, 16-bit): instrument from this "
                                "share of the value range")
ClassMapOpt = typer.Option(None, "--class-map", help="colour-coded masks: 'VALUE=instrument;VALUE=background', "
                           "a value 0-255 or R,G,B")


def _mask_format(threshold: float, class_map: Optional[str]):
    from endopat.data.labeled import MaskFormat

    return MaskFormat.parse(threshold, class_map, "--mask-threshold/--class-map")


def _size(value: Optional[str]) -> Optional[tuple[int, int]]:
    """``--image-size``: ``128`` (square) or ``HxW``."""
    if value is None:
        return None
    return _parse_hw(value if "x" in value.lower() else f"{value}x{value}", "--image-size")


def _aspect_hint(sizes: dict[str, int]) -> str:
    """The most common ``WxH`` of ``sizes`` as a network size with its aspect ratio (short side 256)."""
    from endopat.data.geometry import aspect_size

    w, h = (int(v) for v in max(sizes, key=sizes.get).split("x"))
    a, b = aspect_size((h, w))
    return f"[{a}, {b}] (short side 256; any size letterboxes without squashing)"


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

    from endopat.config import validate

    if site not in SITES:
        raise EndopatError(f"unknown site '{site}' (choose from {', '.join(SITES)})")
    spec = validate(SynthSpec, dict(site=site, seed=seed, size=size, videos=videos, frames=frames,
                                    unlabeled_videos=unlabeled_videos, label_every=label_every), "endopat synth")
    with progress_bar("rendering videos", videos + unlabeled_videos, progress) as advance:
        manifest = generate(out, spec, progress=lambda i, n: advance(1))
    counts = {}
    for v in manifest["videos"]:
        counts[v["role"]] = counts.get(v["role"], 0) + v["labeled_frames"]
    _echo(f"wrote {len(manifest['videos'])} videos to {out}; labeled frames: "
          + ", ".join(f"{k} {n}" for k, n in counts.items() if k != "unlabeled"))


@app.command()
def frames(
    src: Path = typer.Argument(..., help="a video or a folder of videos (or images)"),
    out: Path = typer.Option(..., "--out", "-o", help="frame store folder"),
    size: str = typer.Option("auto", help="frame size HxW, or auto: short side 256 with the source's "
                             "aspect ratio (1920x1080 -> 256x448); set model.image_size to match"),
    fit: str = typer.Option("letterbox", help="letterbox (keep the aspect ratio, pad) or stretch"),
    every: int = typer.Option(1, help="keep every n-th frame"),
    fps: Optional[float] = typer.Option(None, help="sample at this many frames per second instead"),
    crop_fov: bool = typer.Option(False, "--crop-fov", help="cut the black border around the field of view"),
    max_frames: Optional[int] = typer.Option(None),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip unreadable files (logged, counted)"),
    progress: bool = ProgressOpt,
) -> None:
    """Decode videos once into a frame store that pretraining reads fast."""
    from endopat.data.frames import build_store, source_shape
    from endopat.data.geometry import aspect_size
    from endopat.runtime import progress_bar

    if fit not in ("letterbox", "stretch"):
        raise EndopatError(f"--fit '{fit}': choose letterbox or stretch")
    hw = aspect_size(source_shape(src)) if size.lower() == "auto" else _parse_hw(size)
    with progress_bar("decoding frames", None, progress) as advance:
        store = build_store(src, out, hw, stride=every, max_frames=max_frames, fps=fps,
                            crop_fov=crop_fov, skip_bad=skip_bad, log=_echo,
                            progress=lambda n: advance(1), fit=fit)
    _echo(f"{len(store)} frames of {hw[0]}x{hw[1]} in {out}")


def _parse_hw(text: str, option: str = "--size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        assert h > 0 and w > 0
    except (ValueError, AssertionError):
        raise EndopatError(f"{option} '{text}': write HxW, e.g. 256x448") from None
    return h, w


@app.command()
def inspect(
    src: Path = typer.Argument(..., help="a dataset folder (labeled layout, videos or images)"),
    layout: Optional[str] = typer.Option(None, help="force a layout instead of detecting it"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report as JSON"),
    mask_threshold: float = MaskThresholdOpt,
    class_map: Optional[str] = ClassMapOpt,
) -> None:
    """Name the layout, count images, masks and videos, and list every problem found (exit 1 if any)."""
    import json

    from endopat.data.inspect import inspect_source
    from endopat.io import atomic_write_text

    report = inspect_source(src, layout, mask_format=_mask_format(mask_threshold, class_map))
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=1))
    if report["kind"] == "labeled":
        for split, r in report["splits"].items():
            fg = r["foreground"]
            _echo(f"[{split}] layout {r['layout']}: {r['images']} images, {r['mask_files']} mask files, "
                  f"{r['groups']} groups (videos)")
            _echo("  sizes: " + ", ".join(f"{k} ({n})" for k, n in r["sizes"].items()))
            if r["sizes"]:
                _echo(f"  aspect-true model.image_size: {_aspect_hint(r['sizes'])}")
            _echo("  masks: " + (", ".join(f"{k} ({n})" for k, n in r["mask_encodings"].items()) or "none"))
            _echo(f"  instrument fraction: median {fg['median']:.3f}, IQR [{fg['q1']:.3f} {fg['q3']:.3f}], "
                  f"max {fg['max']:.3f}; frames without instrument {100 * fg['empty_share']:.0f}%")
    else:
        for v in report["videos"]:
            _echo(f"{v['path']}: {v['decoded_frames']} frames, {v['width']}x{v['height']}, {v['fps']} fps")
        if report["videos"]:
            v = report["videos"][0]
            _echo(f"aspect-true model.image_size: {_aspect_hint({'%dx%d' % (v['width'], v['height']): 1})}")
        if report["images"]:
            _echo(f"{report['images']} images")
    _echo(f"problems: {len(report['problems'])}")
    for p in report["problems"]:
        _echo(f"  - {p}")
    if report["problems"]:  # like a linter: 1 when anything was found, 0 when clean
        raise typer.Exit(1)


@app.command()
def split(
    src: Path = typer.Argument(..., help="labeled dataset folder"),
    out: Path = typer.Option(..., "--out", "-o", help="split JSON file"),
    layout: Optional[str] = typer.Option(None),
    seed: int = typer.Option(0),
    fractions: str = typer.Option("1,1/2,1/4,1/8,1/16", help="label fractions, comma-separated"),
    subsets: int = typer.Option(5, help="disjoint subsets per fraction (at most)"),
    val_fraction: float = typer.Option(0.15),
    test_fraction: float = typer.Option(0.25),
    test_group: list[str] = typer.Option([], help="a group (video) for the test set; repeatable"),
    val_group: list[str] = typer.Option([], help="a group (video) for the validation set; repeatable"),
) -> None:
    """Group-disjoint train/val/test split and label-fraction subsets, written to a JSON file."""
    from endopat.data.readers import open_labeled
    from endopat.data.splits import make_split
    from endopat.io import output_file

    output_file(out)
    parts = open_labeled(src, layout)
    samples = [s for v in parts.values() for s in v]
    sp = make_split(samples, seed, val_fraction, test_fraction, fractions.split(","), subsets,
                    source=str(src), layout=layout, predefined=None if "all" in parts else parts,
                    test_groups=test_group, val_groups=val_group)
    sp.save(out)
    _echo(f"train {len(sp.train)}, val {len(sp.val)}, test {len(sp.test)}; subsets: "
          + ", ".join(f"{k}: {len(v)}x{len(v[0])}" for k, v in sp.subsets.items()))
    _echo(f"split: {out}")


@app.command()
def pretrain(
    unlabeled: Path = typer.Option(..., "--unlabeled", "-u", help="video, folder of videos or images, or frame store"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (resumes if it holds a run)"),
    task: Optional[str] = typer.Option(None, help="auxiliary task: recolor (default), inpaint, contrastive"),
    config: Optional[Path] = ConfigOpt,
    steps: Optional[int] = typer.Option(None, help="training steps"),
    batch_size: Optional[int] = typer.Option(None),
    image_size: Optional[str] = typer.Option(None, help="train at this size: HxW or one number for a "
                                             "square (multiples of 16)"),
    arch: Optional[str] = ArchOpt,
    encoder_weights: Optional[Path] = EncoderWeightsOpt,
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
    from endopat.tasks.config import PretrainConfig
    from endopat.pretrain import pretrain as run

    cfg = load_config(PretrainConfig, config, task=task, steps=steps, batch_size=batch_size,
                      model__image_size=_size(image_size), model__arch=arch,
                      encoder_weights=_opt_str(encoder_weights), frame_stride=frame_stride,
                      frame_fps=frame_fps, crop_fov=crop_fov,
                      devices=_devices(devices), num_nodes=num_nodes, strategy=strategy,
                      precision=precision, accelerator=accelerator, seed=seed, skip_bad=skip_bad)
    ckpt = run(unlabeled, out, cfg, progress=progress, log=_echo)
    _echo(f"pretrained checkpoint ({cfg.task}): {ckpt}")


def _opt_str(value: Optional[Path]) -> Optional[str]:
    return None if value is None else str(value)


def _devices(value: Optional[str]):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


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
    init: Optional[Path] = typer.Option(None, help="checkpoint to start from (PAT: a pretrained one)"),
    config: Optional[Path] = ConfigOpt,
    epochs: Optional[int] = typer.Option(None),
    max_labels: Optional[int] = typer.Option(None, help="use at most this many training images"),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    image_size: Optional[str] = typer.Option(None, help="HxW or one number (multiples of 16)"),
    input_mode: Optional[str] = typer.Option(None, "--input", help="segmenter input: L or Lab"),
    arch: Optional[str] = ArchOpt,
    encoder_weights: Optional[Path] = EncoderWeightsOpt,
    reinit_last: Optional[bool] = typer.Option(None, "--reinit-last/--keep-last",
                                               help="default: re-init after pretraining, keep after a segmenter"),
    devices: Optional[str] = typer.Option(None),
    num_nodes: Optional[int] = typer.Option(None),
    strategy: Optional[str] = typer.Option(None),
    precision: Optional[str] = typer.Option(None),
    accelerator: Optional[str] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    skip_bad: Optional[bool] = typer.Option(None, "--skip-bad/--no-skip-bad", help="skip unreadable samples"),
    progress: bool = ProgressOpt,
) -> None:
    """Fine-tune for binary instrument segmentation (baseline without --init, PAT with one)."""
    from endopat.config import FinetuneConfig, load_config
    from endopat.finetune import check_start
    from endopat.finetune import finetune as run

    cfg = load_config(FinetuneConfig, config, epochs=epochs, max_labels=max_labels,
                      batch_size=batch_size, lr=lr, model__image_size=_size(image_size),
                      model__input=input_mode, model__arch=arch, encoder_weights=_opt_str(encoder_weights),
                      devices=_devices(devices), num_nodes=num_nodes,
                      strategy=strategy, precision=precision, accelerator=accelerator, seed=seed,
                      skip_bad=skip_bad)
    check_start(cfg, init)  # a bad --init or --encoder-weights fails before the split is written
    train, val = _train_val(data, layout, split_file, fraction, subset, out, cfg.seed,
                            _mask_format(mask_threshold, class_map))
    best = run(train, val, out, cfg, init=init, reinit_last=reinit_last, progress=progress, log=_echo)
    _echo(f"best checkpoint: {best}")


def _train_val(data, layout, split_file, fraction, subset, out, seed, mask_format=None):
    """Training and validation samples: from ``--split``, the source's train/ and val/ folders,
    or a group-disjoint split endopat makes itself in the run folder (and reuses on resume)."""
    from endopat.data.readers import open_labeled
    from endopat.data.splits import Split, split_in
    from endopat.io import output_folder

    output_folder(out)
    parts = open_labeled(data, layout, mask_format)
    samples = [s for v in parts.values() for s in v]
    if split_file is not None:
        sp = Split.load(split_file)
    elif "all" in parts:
        sp = split_in(out, samples, seed, source=str(data), layout=layout, log=_echo)
    else:
        if fraction:
            raise EndopatError("--fraction needs --split with train/ val/ folders (make one with `endopat split`)")
        for needed in ("train", "val"):
            if needed not in parts:
                raise EndopatError(f"{data}: no {needed}/ folder (expected train/ and val/, or pass --split)")
        return parts["train"], parts["val"]
    train_ids = sp.subset(fraction, subset) if fraction else sp.train
    return sp.resolve(samples, train_ids), sp.resolve(samples, sp.val)


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
    device: str = typer.Option("cpu"),
) -> None:
    """Per-image Dice and IoU, with mean, median and IQR."""
    from endopat.data.readers import open_labeled
    from endopat.data.splits import Split
    from endopat.evaluate import evaluate as run
    from endopat.evaluate import summarize, write_metrics_csv
    from endopat.io import output_file

    output_file(out)
    parts = open_labeled(data, layout, _mask_format(mask_threshold, class_map))
    beside = model.parent / "split.json"  # the split `finetune` made for a folder without parts
    if split_file is None and "all" in parts and beside.is_file():
        split_file = beside
        _echo(f"using the split the model was trained with: {beside}")
    if split_file is not None:
        sp = Split.load(split_file)
        if split not in ("train", "val", "test"):
            raise EndopatError(f"--split-name must be train, val or test, not '{split}'")
        samples = sp.resolve([s for v in parts.values() for s in v], getattr(sp, split))
    else:
        samples = parts.get(split, parts.get("all"))
    if samples is None:
        raise EndopatError(f"{data}: no {split}/ folder")
    rows = run(model, samples, device=device)
    write_metrics_csv(rows, out)
    for metric, s in summarize(rows).items():
        _echo(f"{metric}: mean {s['mean']:.3f}  median {s['median']:.3f}  "
              f"IQR [{s['q1']:.3f} {s['q3']:.3f}]  n={s['n']}")
    _echo(f"per-image metrics: {out}")


@app.command()
def predict(
    model: Path = typer.Argument(..., help="segmenter checkpoint (.pt) or exported model (.onnx)"),
    source: Path = typer.Argument(..., help="an image, a folder of images, or a video"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    threshold: Optional[float] = typer.Option(None, help="foreground probability threshold (default: the model's)"),
    batch_size: int = typer.Option(8),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ... (PyTorch models)"),
    save_masks: bool = typer.Option(False, "--save-masks", help="videos: also write every frame's mask"),
    backend: str = typer.Option("auto", help="auto (onnxruntime on CPU when installed, else PyTorch), "
                                "onnx or torch"),
    progress: bool = ProgressOpt,
) -> None:
    """Segment instruments: masks for images; overlay video + per-frame CSV for a video."""
    from endopat.predict import predict as run

    result = run(model, source, out, batch_size, threshold, device, save_masks, progress, backend, _echo)
    if "overlay" in result:
        _echo(f"{result['frames']} frames -> {result['overlay']} and {result['csv']}")
    else:
        _echo(f"{len(result['masks'])} masks -> {out / 'masks'}")


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
    strategy: str = typer.Option("diverse", help="random, diverse (k-center), uncertain or hybrid"),
    seed: int = typer.Option(0),
    fps: float = typer.Option(1.0, help="video frames sampled per second"),
    min_gap: float = typer.Option(2.0, help="seconds between two chosen frames of one video"),
    device: str = typer.Option("cpu"),
    progress: bool = ProgressOpt,
) -> None:
    """Choose the frames to label next (diversity, uncertainty); write them with CVAT and Label Studio imports."""
    from endopat.suggest import suggest as run

    result = run(source, n, out, model, labeled, strategy, seed, fps, min_gap, device=device,
                 progress=progress, log=_echo)
    _echo(f"chose {result['chosen']} of {result['candidates']} frames ({strategy}): {result['ranking']}; "
          f"imports in {out / 'cvat'} and {out / 'label_studio'}")


@app.command("import")
def import_cmd(
    export: Path = typer.Argument(..., help="an annotation tool's export: CVAT for images 1.1 XML, CVAT "
                                  "Segmentation mask 1.1, COCO instances JSON or Label Studio JSON (file, folder or zip)"),
    images: Path = typer.Option(..., "--images", help="the folder holding the annotated images (e.g. suggest's)"),
    out: Path = typer.Option(..., "--out", "-o", help="labeled folder (images/ + masks/) to write or add to"),
    format: Optional[str] = typer.Option(None, help="cvat, cvat-mask, coco or label-studio (default: detected)"),
    label: list[str] = typer.Option([], help="a label that means instrument; repeatable (default: the only "
                                    "label, or 'instrument')"),
    annotator: Optional[str] = typer.Option(None, help="Label Studio: this annotator's annotations (e-mail or "
                                            "id; default: the latest annotation of each task)"),
    replace: bool = typer.Option(False, "--replace", help="replace a frame's mask that differs"),
) -> None:
    """Read an annotation tool's export back into a labeled folder (the annotation loop's return)."""
    from endopat.annotation.importer import import_export

    r = import_export(export, images, out, format, label or None, annotator, replace)
    _echo(f"{r['tool']}: {r['frames']} frames; added {r.get('added', 0)}, replaced {r.get('replaced', 0)}, "
          f"unchanged {r.get('unchanged', 0)} ({r.get('empty', 0)} without instrument) -> {out}")
    if r["left_out"]:
        _echo("left out: " + ", ".join(f"{n} {what}" for what, n in r["left_out"].items()))


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

    _echo(f"exported: {export_onnx(model, onnx_out, opset)}")


@app.command()
def study(
    config: Path = typer.Argument(..., help="study YAML (see examples/demo.yaml, examples/paper.yaml)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder; running again resumes"),
    shard: Optional[str] = typer.Option(None, help="run only cells i, i+n, ... of the grid: i/n"),
    stage: str = typer.Option("all", help="all, stages (shared pretraining only) or cells"),
    report: bool = typer.Option(True, "--report/--no-report", help="write the report at the end"),
    workers: int = typer.Option(1, min=1, help="processes running stages and cells side by side (CPU; "
                                "each gets cpu_count/workers threads)"),
    progress: bool = ProgressOpt,
) -> None:
    """The paper's experiments: label-fraction sweep x methods x subsets, then Table 1 and figures."""
    from endopat.study.config import load_study
    from endopat.study.grid import parse_shard
    from endopat.study.runner import run_study

    if stage not in ("all", "stages", "cells"):
        raise EndopatError(f"--stage '{stage}': choose all, stages or cells")
    cfg = load_study(config)
    counts = run_study(cfg, out, parse_shard(shard), stage, progress, _echo, report, workers)
    _echo(f"cells in this shard: {counts['cells']} (ran {counts['run']}, already finished {counts['skipped']})")
    if report:
        _echo(f"report: {out / 'report' / 'report.md'} and report.html")


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="study run folder (merges every finished cell)"),
) -> None:
    """(Re)write a study's report from whatever cells are finished, e.g. after sharded runs."""
    from endopat.report.study import write_study_report
    from endopat.study.config import study_from_dict
    from endopat.study.runner import prepare

    meta = run / "study.json"
    if not meta.is_file():
        raise EndopatError(f"{run}: not a study run folder (no study.json)")
    import json

    cfg = study_from_dict(json.loads(meta.read_text()), str(meta))
    path = write_study_report(run, cfg, prepare(cfg, run, _echo))
    _echo(f"report: {path}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o"),
    quick: bool = typer.Option(False, "--quick", help="a version that takes under a minute"),
    data_seed: int = typer.Option(0, "--data-seed", min=0, help="another synthetic dataset, split and "
                                  "seeds: does the report's conclusion hold on it?"),
    workers: Optional[int] = typer.Option(None, min=1, help="processes side by side (default: one per "
                                          "core, at most 8)"),
    progress: bool = ProgressOpt,
) -> None:
    """The demo study on synthetic endoscopy (examples/demo.yaml): <= 10 minutes on 2 CPU cores."""
    from endopat.demo import run_demo

    report = run_demo(out, quick=quick, progress=progress, log=_echo, data_seed=data_seed, workers=workers)
    _echo(f"report: {report} (and report.html beside it)")


def main() -> None:
    try:
        app()
    except EndopatError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except OSError as err:  # a path the operating system refused: name it, in one line
        typer.echo(f"error: {err.filename2 or err.filename or ''}: {err.strerror or err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished work is saved; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
