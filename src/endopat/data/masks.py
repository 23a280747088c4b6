"""How mask files mean classes: the generic readings (binary, lossy grey, a class map, class ids),
the public datasets' fixed value maps (EndoVis 2017 parts, CholecSeg8k's 13 classes and EndoViT's
8-class merge) and :data:`MASK_ENCODINGS`, the registry a :class:`~endopat.data.labeled.Sample`'s
``encoding`` names. A decoder returns bool (instrument) or uint8 class ids."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from endopat.errors import EndopatError, reading
from endopat.io import read_image
from endopat.labels import BINARY, Labels

@dataclass(frozen=True)
class MaskFormat:
    """How a generic mask file's values become classes.

    Without a class map: 0/1 and 0/255 masks read exactly as background/instrument; any other grey
    mask (a JPEG's ringing, a 16-bit 0/65535 PNG) is instrument where its value is at least
    ``threshold`` of the type's range (255 for 8 bits, 65535 for 16); a mask of a few small integers
    is class ids and needs a class list (``classes``, or a ``classes.txt`` beside the folders); a
    colour-coded mask is an error asking for a class map.
    ``class_map``: (value, class name) pairs, a value being a grey or palette level or an (r, g, b)
    triple; the names ``background`` and ``instrument`` alone keep the binary target, other names make
    a multi-class one (background first, then the names in the map's order; ``ignore`` marks pixels
    that neither train nor score); a value the map does not name is an error.
    ``classes``: the class list of class-id masks (id = position)."""

    threshold: float = 0.5
    class_map: tuple[tuple[int | tuple[int, int, int], str], ...] = ()
    classes: Labels | None = None

    @property
    def labels(self) -> Labels | None:
        """The classes this format defines (``None``: the reader's own)."""
        if self.classes is not None:
            return self.classes
        if not self.class_map:
            return None
        names = [n for n in dict.fromkeys(name for _, name in self.class_map) if n != "ignore"]
        if set(names) <= {"background", "instrument"}:
            return BINARY
        return Labels(("background", *[n for n in names if n != "background"]))

    @classmethod
    def parse(cls, threshold: float = 0.5, class_map: dict[str, str] | str | None = None,
              source: str = "mask format", classes: list[str] | str | None = None) -> "MaskFormat":
        """From a config (``{"255,0,0": "instrument", "0": "background"}``) or a CLI string
        (``"255,0,0=instrument;0,0,0=background"``); a bad one is a one-line error."""
        with reading(source, "class map"):
            fmt = cls._parse(threshold, class_map, source)
            if classes:
                if fmt.class_map:
                    raise EndopatError(f"{source}: give a class map or a class list, not both")
                fmt = replace(fmt, classes=Labels.parse(classes, source=source))
            try:
                fmt.labels  # noqa: B018 (checks the class names)
            except EndopatError as err:
                raise EndopatError(f"{source}: {err}") from None
            return fmt

    @classmethod
    def _parse(cls, threshold: float, class_map: dict[str, str] | str | None, source: str) -> "MaskFormat":
        if not 0 < threshold < 1:
            raise EndopatError(f"{source}: mask threshold {threshold} must be between 0 and 1 (a share of the "
                               "value range, e.g. 0.5)")
        if isinstance(class_map, str):
            try:
                class_map = dict(item.split("=") for item in class_map.split(";") if item.strip())
            except ValueError:
                raise EndopatError(f"{source}: class map '{class_map}': write VALUE=CLASS;VALUE=CLASS, "
                                   "a value being 0-255 or R,G,B (e.g. 255,0,0=instrument;0,0,0=background)") from None
        pairs = []
        for key, label in (class_map or {}).items():
            parts = [p.strip() for p in str(key).split(",")]
            if len(parts) not in (1, 3) or not all(p.isdigit() and int(p) < 65536 for p in parts):
                raise EndopatError(f"{source}: class map key '{key}' is not a value (0-65535) or an R,G,B triple")
            name = str(label).strip()
            if not name:
                raise EndopatError(f"{source}: class map value for '{key}' is empty: name a class")
            value = int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)
            pairs.append((value, name))
        if pairs and not any(name not in ("background", "ignore") for _, name in pairs):
            raise EndopatError(f"{source}: the class map names no foreground class (e.g. instrument)")
        return cls(threshold, tuple(pairs))




def _grey(raw: np.ndarray, path: Path) -> np.ndarray:
    """A grey mask: RGB(A) with equal channels reads as its first; a colour-coded one is an error."""
    if raw.ndim == 3:
        rgb = raw[..., :3]
        if not (rgb == rgb[..., :1]).all():
            colours = np.unique(rgb.reshape(-1, 3), axis=0)
            shown = ", ".join("(" + ",".join(map(str, c)) + ")" for c in colours[:4])
            raise EndopatError(f"{path}: colour-coded mask ({len(colours)} colours: {shown}"
                               f"{' ...' if len(colours) > 4 else ''}); give a class map, e.g. "
                               "--class-map '255,0,0=instrument;0,0,0=background'")
        raw = raw[..., 0]
    return raw


def _class_ids(values: set[int]) -> bool:
    """Values that are class ids, not a binary or lossy grey mask: a few small integers (at most 32,
    some above 1), 255 allowed as an ignore id."""
    small = values - {255}
    return bool(small) and max(small) <= 32 and max(small) >= 2 and not (values <= {0, 255})


def generic_mask(raw: np.ndarray, path: Path, fmt: MaskFormat = MaskFormat()) -> np.ndarray:
    """A generic mask file's classes (:class:`MaskFormat` says how): bool (instrument) for the
    binary readings, uint8 class ids for a class map."""
    if fmt.class_map:
        return _mapped(raw, path, fmt)
    raw = _grey(raw, path)
    values = set(np.unique(raw).tolist())
    if raw.dtype == bool or values <= {0, 1}:
        return raw > 0
    if _class_ids(values) and raw.dtype.itemsize == 1:
        shown = "/".join(map(str, sorted(values)))
        raise EndopatError(f"{path}: mask values {shown} look like class ids, not a binary mask; name the classes "
                           "in a classes.txt beside images/ and masks/ (one 'ID NAME' line each, 0 background, "
                           "'255 ignore' optional) or with --classes background,NAME,...")
    top = 65535 if raw.dtype.itemsize >= 2 else 255  # 16-bit PNGs read as uint16 (or int32)
    return raw >= fmt.threshold * top


def _mapped(raw: np.ndarray, path: Path, fmt: MaskFormat) -> np.ndarray:
    """Class ids of a mask through ``fmt.class_map`` (grey levels or RGB colours)."""
    triples = any(isinstance(v, tuple) for v, _ in fmt.class_map)
    if triples:  # colours: compare RGB (a palette mask is expanded to its colours)
        rgb = read_image(path, mode="RGB").astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        key = lambda v: (v[0] << 16) | (v[1] << 8) | v[2] if isinstance(v, tuple) else (v << 16) | (v << 8) | v  # noqa: E731
    else:
        code, key = (raw[..., 0] if raw.ndim == 3 else raw).astype(np.int64), int
    labels = fmt.labels
    known = np.array([key(v) for v, _ in fmt.class_map])
    ids = np.array([labels.ignore if name == "ignore" else labels.id_of(name) for _, name in fmt.class_map])
    found = np.unique(code)
    unmapped = np.setdiff1d(found, known)
    if unmapped.size:
        show = (lambda c: f"({c >> 16},{(c >> 8) & 255},{c & 255})") if triples else str
        raise EndopatError(f"{path}: mask values {', '.join(show(int(c)) for c in unmapped[:4])}"
                           f"{' ...' if unmapped.size > 4 else ''} are not in the class map")
    order = np.argsort(known)
    return ids[order][np.searchsorted(known[order], code)].astype(np.uint8)


def describe_mask(raw: np.ndarray) -> str:
    """The encoding of a mask file, for ``inspect``: 0/1, 0/255, 16-bit, class ids, lossy grey or colour."""
    if raw.ndim == 3 and not (raw[..., :3] == raw[..., :1]).all():
        return f"colour-coded ({len(np.unique(raw[..., :3].reshape(-1, 3), axis=0))} colours)"
    grey = raw[..., 0] if raw.ndim == 3 else raw
    values = set(np.unique(grey).tolist())
    bits = "16-bit" if grey.dtype.itemsize >= 2 else "8-bit"
    if values == {0}:
        return f"{bits} all 0 (no instrument)"
    if values <= {0, 1}:
        return f"{bits} 0/1"
    if values <= {0, 255} or values <= {0, 65535}:
        return f"{bits} 0/{max(values)}"
    if _class_ids(values) and bits == "8-bit":
        return f"class ids {'/'.join(map(str, sorted(values)))} (no class list: add classes.txt or --classes)"
    return f"{bits} grey, {len(values)} levels (lossy or soft: thresholded)"


def _channel0(raw: np.ndarray) -> np.ndarray:
    return raw[..., 0] if raw.ndim == 3 else raw


def _values(raw: np.ndarray) -> str:
    values = np.unique(_channel0(raw)).tolist()
    return "/".join(map(str, values)) if len(values) <= 6 else f"{len(values)} values"


CHOLECSEG8K_INSTRUMENT = (31, 32)  # watershed classes: grasper, L-hook


@dataclass(frozen=True)
class ValueMap:
    """A fixed mapping of a dataset's mask values to class ids (a lookup table over 0-255); values it
    does not name are ``unknown``: the ignore id, or an error naming the file (``None``)."""

    labels: Labels
    values: tuple[tuple[int, int], ...]  # (file value, class id)
    unknown: int | None = None
    note: str = ""

    def decode(self, raw: np.ndarray, path: Path) -> np.ndarray:
        grey = _channel0(raw)
        table = np.full(256, -1 if self.unknown is None else self.unknown, np.int16)
        for value, i in self.values:
            table[value] = i
        if grey.dtype != np.uint8:
            raise EndopatError(f"{path}: {grey.dtype} mask; this dataset's masks are 8-bit")
        ids = table[grey]
        if (ids < 0).any():
            bad = np.unique(grey[ids < 0]).tolist()
            raise EndopatError(f"{path}: mask values {', '.join(map(str, bad[:6]))} are not in this dataset's "
                               f"classes ({self.note or self.labels.describe()})")
        return ids.astype(np.uint8)


@dataclass(frozen=True)
class MaskEncoding:
    """How a reader's mask files mean classes: ``decode(raw, path, sample)`` -> bool (instrument) or
    uint8 class ids, ``describe(raw, sample)`` -> what ``inspect`` prints for one file; ``labels``:
    the encoding's own fixed classes (``None``: binary, or the sample's)."""

    decode: Callable[[np.ndarray, Path, Any], np.ndarray]
    describe: Callable[[np.ndarray, Any], str]
    labels: Labels | None = None


def _value_map(vmap: ValueMap, what: str) -> MaskEncoding:
    return MaskEncoding(lambda raw, path, s: vmap.decode(raw, path), lambda raw, s: f"{what} {_values(raw)}",
                        vmap.labels)


# EndoVis 2017 part labels (the challenge's 0/10/20/30; any other non-zero value, e.g. a probe's, ignored)
ENDOVIS17_PARTS = ValueMap(Labels(("background", "shaft", "wrist", "claspers")), ((0, 0), (10, 1), (20, 2), (30, 3)),
                           unknown=255, note="0 background, 10 shaft, 20 wrist, 30 claspers; others ignored")
# CholecSeg8k's 13 watershed classes (Hong et al. 2020, the dataset's Kaggle page). The masks hold
# two more values than documented: 255 (a 1-pixel white edge) and 0 (unsegmented pixels): ignored.
CHOLECSEG8K_13 = ValueMap(
    Labels(("black_background", "abdominal_wall", "liver", "gastrointestinal_tract", "fat", "grasper",
            "connective_tissue", "blood", "cystic_duct", "l_hook_electrocautery", "gallbladder", "hepatic_vein",
            "liver_ligament")),
    ((50, 0), (11, 1), (21, 2), (13, 3), (12, 4), (31, 5), (23, 6), (24, 7), (25, 8), (32, 9), (22, 10), (33, 11),
     (5, 12), (0, 255), (255, 255)),
    note="CholecSeg8k watershed values 50,11,21,13,12,31,23,24,25,32,22,33,5; 0 and 255 ignored")
# EndoViT's 8-class merge (Batic et al. 2024, datasets/CholecSeg8k/utils/
# CholecSeg8k_color_dict_combined_classes.py): connective tissue, blood, cystic duct, hepatic vein and
# liver ligament -> one "misc" class; grasper and L-hook -> "instrument"; 0 and 255 ignored (EndoViT
# gives them a 9th class it ignores in loss and metrics).
CHOLECSEG8K_8 = ValueMap(
    Labels(("black_background", "abdominal_wall", "liver", "gastrointestinal_tract", "fat", "gallbladder", "misc",
            "instrument")),
    ((50, 0), (11, 1), (21, 2), (13, 3), (12, 4), (22, 5), (23, 6), (24, 6), (25, 6), (33, 6), (5, 6), (31, 7),
     (32, 7), (0, 255), (255, 255)),
    note="EndoViT's merge of CholecSeg8k's watershed values; 0 and 255 ignored")


def _class_id_mask(raw: np.ndarray, path: Path, s: Any) -> np.ndarray:
    return s.labels.check_ids(_grey(raw, path), path)


MASK_ENCODINGS = {
    # generic: 0/1, 0/255, 16-bit or lossy grey (thresholded), a class map (grey or colour values)
    "binary": MaskEncoding(lambda raw, path, s: generic_mask(raw, path, s.mask_format),
                           lambda raw, s: (f"class map ({describe_mask(raw)})" if s.mask_format.class_map
                                           else describe_mask(raw))),
    # class ids (a classes.txt or --classes names them; values outside the list are errors)
    "ids": MaskEncoding(_class_id_mask, lambda raw, s: f"class ids of {s.labels.num_classes} classes"),
    # part or instance labels (EndoVis 2017 parts 10/20/30/..., ROBUST-MIS instance ids): > 0
    "nonzero": MaskEncoding(lambda raw, path, s: _channel0(raw) > 0,
                            lambda raw, s: f"part/instance labels {_values(raw)}: instrument where > 0"),
    # Kvasir-Instrument: instrument where channel 0 is 255 (> 127 tolerates resampling noise)
    "kvasir": MaskEncoding(lambda raw, path, s: _channel0(raw) > 127,
                           lambda raw, s: "Kvasir masks: instrument where channel 0 > 127"),
    # CholecSeg8k watershed masks: grey 31 = grasper, 32 = L-hook (RGB or RGBA, channel 0 read)
    "cholecseg8k": MaskEncoding(lambda raw, path, s: np.isin(_channel0(raw), CHOLECSEG8K_INSTRUMENT),
                                lambda raw, s: "watershed classes: instrument = 31 (grasper), 32 (L-hook)"),
    "cholecseg8k-13": _value_map(CHOLECSEG8K_13, "watershed classes (13)"),
    "cholecseg8k-8": _value_map(CHOLECSEG8K_8, "watershed classes (EndoViT's 8)"),
    "endovis17-parts": _value_map(ENDOVIS17_PARTS, "part labels"),
}
