"""Readers for labeled instrument-segmentation datasets, one module per on-disk layout.

Each reader module has ``NAME``, ``detect(root) -> bool`` and ``read(root, ...) -> list[Sample]``.
:func:`read_labeled` uses the named layout or the first whose ``detect`` accepts the folder (the
most specific layouts are tried first).
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.labeled import SPLITS, Sample
from endopat.data.masks import MaskFormat
from endopat.data.readers import cholecseg8k, endovis17, generic, kvasir, robustmis19
from endopat.errors import EndopatError

READERS = {m.NAME: m for m in (endovis17, robustmis19, cholecseg8k, kvasir, generic)}
# the multi-class readings of a layout (detection gives the binary one): name -> (layout, options)
VARIANTS = {"endovis17-parts": ("endovis17", {"classes": "parts"}),
            "endovis17-types": ("endovis17", {"classes": "types"}),
            "cholecseg8k-13": ("cholecseg8k", {"classes": "13"}),
            "cholecseg8k-8": ("cholecseg8k", {"classes": "8"})}
LAYOUTS = (*READERS, *VARIANTS)


def detect_layout(root: str | Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise EndopatError(f"{root}: not a folder" if root.exists() else f"{root}: not found")
    for name, reader in READERS.items():
        if reader.detect(root):
            return name
    raise EndopatError(
        f"{root}: unrecognised layout (expected one of: {', '.join(READERS)}; see the README)")


def read_labeled(root: str | Path, layout: str | None = None, keep_bad: bool = False,
                 **options) -> list[Sample]:
    """Samples of ``root`` in ``layout`` (detected when None); options go to the reader.

    A frame the reader found unusable (its mask missing, say) is an error naming it, unless
    ``keep_bad``: then it is returned with its ``problem`` set (``inspect`` lists them all).
    """
    root = Path(root)
    name = layout or detect_layout(root)
    if name in VARIANTS:
        name, more = VARIANTS[name]
        options = {**more, **options}
    if name not in READERS:
        raise EndopatError(f"unknown layout '{name}' (choose from {', '.join(LAYOUTS)})")
    samples = READERS[name].read(root, **options)
    bad = [s for s in samples if s.problem]
    if bad and not keep_bad:
        more = f" (and {len(bad) - 1} more; `endopat inspect` lists them)" if len(bad) > 1 else ""
        raise EndopatError(bad[0].problem + more)
    return samples


def open_labeled(src: str | Path, layout: str | None = None,
                 mask_format: MaskFormat | None = None, skip_bad: bool = False) -> dict[str, list[Sample]]:
    """Samples of a labeled source, by split when the source has ``train/``, ``val/``, ``test/``.

    Each split folder (or the source itself, returned under ``"all"``) is read with the named
    ``layout`` or the one detected (see :mod:`endopat.data.readers`); ``mask_format`` says how
    generic masks read (default: :class:`MaskFormat`). ``skip_bad``: frames the reader finds
    unusable (a missing mask) are left out instead of stopping with an error.
    """
    src = Path(src)
    if not src.exists():
        raise EndopatError(f"{src}: not found")
    if not src.is_dir():
        raise EndopatError(f"{src}: not a folder")
    present = [s for s in SPLITS if (src / s).is_dir()]
    parts = ({s: read_labeled(src / s, layout, keep_bad=skip_bad) for s in present} if present
             else {"all": read_labeled(src, layout, keep_bad=skip_bad)})
    if skip_bad:
        parts = {k: [s for s in v if not s.problem] for k, v in parts.items()}
    if mask_format is not None and mask_format != MaskFormat():
        parts = {k: [s.with_format(mask_format) for s in v] for k, v in parts.items()}
    return parts
