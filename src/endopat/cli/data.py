"""Commands on data: synth, frames, inspect, split, import."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from endopat.cli.app import (
    ClassMapOpt,
    ClassesOpt,
    MaskThresholdOpt,
    ProgressOpt,
    app,
    aspect_hint,
    echo,
    mask_format_of,
    parse_hw,
)
from endopat.data.geometry import FITS
from endopat.errors import EndopatError


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
    from endopat.config import validate
    from endopat.data.synth import SITES, SynthSpec, generate
    from endopat.runtime import progress_bar

    if site not in SITES:
        raise EndopatError(f"unknown site '{site}' (choose from {', '.join(SITES)})")
    spec = validate(SynthSpec, dict(site=site, seed=seed, size=size, videos=videos, frames=frames,
                                    unlabeled_videos=unlabeled_videos, label_every=label_every), "endopat synth")
    with progress_bar("rendering videos", videos + unlabeled_videos, progress) as advance:
        manifest = generate(out, spec, progress=lambda i, n: advance(1))
    counts = {}
    for v in manifest["videos"]:
        counts[v["role"]] = counts.get(v["role"], 0) + v["labeled_frames"]
    echo(f"wrote {len(manifest['videos'])} videos to {out}; labeled frames: "
          + ", ".join(f"{k} {n}" for k, n in counts.items() if k != "unlabeled"))


@app.command()
def frames(
    src: Path = typer.Argument(..., help="a video or a folder of videos (or images)"),
    out: Path = typer.Option(..., "--out", "-o", help="frame store folder"),
    size: str = typer.Option("auto", help="frame size HxW, or auto: short side 256 with the source's "
                             "aspect ratio (1920x1080 -> 256x448); set model.image_size to match"),
    fit: str = typer.Option(FITS[0], help=f"{' or '.join(FITS)} (endopat.data.geometry: letterbox keeps the aspect "
                            "ratio and pads)"),
    every: int = typer.Option(1, help="keep every n-th frame"),
    fps: Optional[float] = typer.Option(None, help="sample at this many frames per second instead"),
    crop_fov: bool = typer.Option(False, "--crop-fov", help="cut the black border around the field of view"),
    max_frames: Optional[int] = typer.Option(None),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip unreadable files (logged, counted)"),
    progress: bool = ProgressOpt,
) -> None:
    """Decode videos once into a frame store that pretraining reads fast."""
    from endopat.data.frames import build_store
    from endopat.runtime import progress_bar

    if fit not in FITS:
        raise EndopatError(f"--fit '{fit}': choose {' or '.join(FITS)}")
    with progress_bar("decoding frames", None, progress) as advance:
        store = build_store(src, out, None if size.lower() == "auto" else parse_hw(size), stride=every,
                            max_frames=max_frames, fps=fps, crop_fov=crop_fov, skip_bad=skip_bad, log=echo,
                            progress=lambda n: advance(1), fit=fit)
    h, w = store.size
    echo(f"{len(store)} frames of {h}x{w} in {out}")
    from endopat.config import SemiConfig
    from endopat.semi.unlabeled import neighbour_likeness

    gap = SemiConfig.model_fields["gap"].default
    if (likeness := neighbour_likeness(store, gap)) is not None:  # what `finetune --semi temporal` would pair
        echo(f"frames {gap} apart differ {likeness:.2f}x as much as any two frames of one video (temporal "
             "consistency assumes small motion: near 1, sample more densely)")


@app.command()
def inspect(
    src: Path = typer.Argument(..., help="a dataset folder (labeled layout, videos or images)"),
    layout: Optional[str] = typer.Option(None, help="force a layout instead of detecting it"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report as JSON"),
    mask_threshold: float = MaskThresholdOpt,
    class_map: Optional[str] = ClassMapOpt,
    classes: Optional[str] = ClassesOpt,
) -> None:
    """Name the layout, count images, masks and videos, the classes, and list every problem found (exit 1 if any)."""
    import json

    from endopat.data.inspect import inspect_source
    from endopat.io import atomic_write_text

    report = inspect_source(src, layout, mask_format=mask_format_of(mask_threshold, class_map, classes))
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=1))
    if report["kind"] == "labeled":
        for split, r in report["splits"].items():
            fg = r["foreground"]
            echo(f"[{split}] layout {r['layout']}: {r['images']} images, {r['mask_files']} mask files, "
                  f"{r['groups']} groups (videos)")
            echo("  sizes: " + ", ".join(f"{k} ({n})" for k, n in r["sizes"].items()))
            if r["sizes"]:
                echo(f"  aspect-true model.image_size: {aspect_hint(r['sizes'])}")
            echo("  masks: " + (", ".join(f"{k} ({n})" for k, n in r["mask_encodings"].items()) or "none"))
            if r["blank_images"]:
                shown = ", ".join(r["blank_images"][:4]) + (" ..." if len(r["blank_images"]) > 4 else "")
                echo(f"  blank images (one colour): {len(r['blank_images'])} ({shown}); they score 1 when nothing "
                     "is predicted on them")
            binary = list(r.get("classes", {"background": 0, "instrument": 0})) == ["background", "instrument"]
            what = "instrument" if binary else "foreground (any class but background)"
            echo(f"  {what} fraction: median {fg['median']:.3f}, IQR [{fg['q1']:.3f} {fg['q3']:.3f}], "
                  f"max {fg['max']:.3f}; frames without {'instrument' if binary else 'foreground'} "
                  f"{100 * fg['empty_share']:.0f}%")
            if not binary and "classes" in r:
                echo("  classes (share of labeled pixels, frames):")
                for name, c in r["classes"].items():
                    echo(f"    {c['id']:>3} {name}: {100 * c['pixel_share']:.1f}%, {c['frames']} frames")
                if "ignored" in r:
                    echo(f"    ignored: {100 * r['ignored']['pixel_share']:.1f}% of pixels, {r['ignored']['frames']} frames")
    else:
        for v in report["videos"]:
            echo(f"{v['path']}: {v['decoded_frames']} frames, {v['width']}x{v['height']}, {v['fps']} fps")
        if report["videos"]:
            v = report["videos"][0]
            echo(f"aspect-true model.image_size: {aspect_hint({'%dx%d' % (v['width'], v['height']): 1})}")
        if report["images"]:
            echo(f"{report['images']} images")
    echo(f"problems: {len(report['problems'])}")
    for p in report["problems"]:
        echo(f"  - {p}")
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
    from endopat.data.splits import split_source

    sp = split_source(src, out, layout, seed, fractions.split(","), subsets, val_fraction, test_fraction,
                      test_group, val_group)
    echo(f"train {len(sp.train)}, val {len(sp.val)}, test {len(sp.test)}; subsets: "
          + ", ".join(f"{k}: {len(v)}x{len(v[0])}" for k, v in sp.subsets.items()))
    echo(f"split: {out}")


@app.command("import")
def import_cmd(
    export: Path = typer.Argument(..., help="an annotation tool's export: CVAT for images 1.1 XML, CVAT "
                                  "Segmentation mask 1.1, COCO instances JSON or Label Studio JSON (file, folder or zip)"),
    images: Path = typer.Option(..., "--images", help="the folder holding the annotated images (e.g. suggest's)"),
    out: Path = typer.Option(..., "--out", "-o", help="labeled folder (images/ + masks/) to write or add to"),
    format: Optional[str] = typer.Option(None, help="cvat, cvat-mask, coco or label-studio (default: detected)"),
    label: list[str] = typer.Option([], help="binary: a label that means instrument; repeatable (default: the "
                                    "only label, or 'instrument'); multi-class: NAME=CLASS maps a tool label to a class"),
    classes: Optional[str] = typer.Option(None, "--classes", help="multi-class: the class names by id "
                                          "('background,gallbladder,tool'), or a checkpoint .pt/.onnx whose classes "
                                          "to use (default: the folder's classes.txt, else binary)"),
    annotator: Optional[str] = typer.Option(None, help="Label Studio: this annotator's annotations (e-mail or "
                                            "id; default: the latest annotation of each task)"),
    replace: bool = typer.Option(False, "--replace", help="replace a frame's mask that differs"),
) -> None:
    """Read an annotation tool's export back into a labeled folder (the annotation loop's return)."""
    from endopat.annotation.importer import import_export
    from endopat.labels import Labels

    target = None
    if classes and Path(classes).suffix.lower() in (".pt", ".onnx"):
        from endopat.predict import load_model

        target = load_model(classes, backend="torch" if classes.lower().endswith(".pt") else "onnx").labels
    elif classes:
        target = Labels.parse(classes)
    r = import_export(export, images, out, format, label or None, annotator, replace, target)
    echo(f"{r['tool']}: {r['frames']} frames; added {r.get('added', 0)}, replaced {r.get('replaced', 0)}, "
          f"unchanged {r.get('unchanged', 0)} ({r.get('empty', 0)} only background) -> {out}")
    if r["left_out"]:
        echo("left out: " + ", ".join(f"{n} {what}" for what, n in r["left_out"].items()))
