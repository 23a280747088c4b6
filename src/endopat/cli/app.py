"""The ``endopat`` typer app, the options several commands share, and ``main``: an
:class:`~endopat.errors.EndopatError` (bad file, bad config key, ...) or a path the operating
system refuses is printed on one line and exits with code 2, without a traceback.

Each command module (:mod:`endopat.cli.data`, ``train``, ``use``, ``study``) parses its options,
makes one call into the Python API and prints what it returned. The API modules are imported
inside the commands, so that ``endopat --help`` and a bad-input error come back at once (torch,
MONAI and Lightning take ~20 s to import on a small CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from endopat.archs import arch_list
from endopat.errors import EndopatError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's paragraphs re-wrapped to the terminal, not broken where the source is
    help="PAT: pretrain a U-Net by GAN re-colorization of unlabeled endoscopic video, "
    "then fine-tune it for instrument (or multi-class) segmentation with few labels.",
)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config (keys as in endopat.config)")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="show progress bars")
ArchOpt = typer.Option(None, help=f"U-Net architecture (endopat.archs): {arch_list()}")
EncoderWeightsOpt = typer.Option(None, "--encoder-weights", help="local .pth/.safetensors encoder weights "
                                 "(e.g. torchvision's ImageNet ResNet) for an encoder --arch")
EncoderNormOpt = typer.Option(None, "--encoder-norm", help="the normalisation the --encoder-weights were "
                              "trained with: imagenet (default; torchvision, DINOv2, MAE, SurgeNet) or endovit")
MaskThresholdOpt = typer.Option(0.5, "--mask-threshold", help="grey masks (JPEG, 16-bit): instrument from this "
                                "share of the value range")
ClassMapOpt = typer.Option(None, "--class-map", help="mask values to classes: 'VALUE=CLASS;...', a value 0-255 or "
                           "R,G,B (e.g. '255,0,0=instrument;0,0,0=background'; other names: multi-class)")
ClassesOpt = typer.Option(None, "--classes", help="class-id masks: the class names by id, comma-separated "
                          "('background,gallbladder,tool'); a classes.txt beside images/ and masks/ does the same")



def mask_format_of(threshold: float, class_map: Optional[str], classes: Optional[str] = None):
    from endopat.data.masks import MaskFormat

    return MaskFormat.parse(threshold, class_map, "--mask-threshold/--class-map/--classes", classes)


def size_of(value: Optional[str]) -> Optional[tuple[int, int]]:
    """``--image-size``: ``128`` (square) or ``HxW``."""
    if value is None:
        return None
    return parse_hw(value if "x" in value.lower() else f"{value}x{value}", "--image-size")


def aspect_hint(sizes: dict[str, int]) -> str:
    """The most common ``WxH`` of ``sizes`` as a network size with its aspect ratio (short side 256)."""
    from endopat.data.geometry import aspect_size

    w, h = (int(v) for v in max(sizes, key=sizes.get).split("x"))
    a, b = aspect_size((h, w))
    return f"[{a}, {b}] (short side 256; any size letterboxes without squashing)"


def echo(msg: str) -> None:
    typer.echo(msg)


def parse_hw(text: str, option: str = "--size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        assert h > 0 and w > 0
    except (ValueError, AssertionError):
        raise EndopatError(f"{option} '{text}': write HxW, e.g. 256x448") from None
    return h, w



def str_or_none(value: Optional[Path]) -> Optional[str]:
    return None if value is None else str(value)


def devices_of(value: Optional[str]):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


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

