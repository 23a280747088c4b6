"""What the labels mean: the one owner of the classes, their ids, names and colours, and the ignore id.

nnU-Net's ``LabelManager`` is the model: every stage asks a :class:`Labels` instead of assuming
"instrument vs background". A class's id is its index (the network's output channel and the value a
class-id mask stores); id 0 is the background; ``ignore`` (default 255) marks pixels that neither
train nor score. Binary instrument segmentation is :data:`BINARY`, the two-class case of the same
path.

Where the labels come from: the data (a ``classes.txt`` of ``id name`` lines beside ``images/`` and
``masks/``, as Endoscapes-Seg50 ships; a reader's fixed list, e.g. EndoVis 2017 parts), a
``--classes`` option or ``model.classes`` in a config; then every checkpoint and ONNX export stores
them (:meth:`Labels.to_dict`) and every later stage reads them from there.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from endopat.errors import EndopatError, reading

IGNORE = 255
# class colours for overlays and annotation tools: background black, then distinct hues (the first
# foreground colour is the binary instrument tint of endopat's overlays)
PALETTE = ((0, 0, 0), (0, 255, 120), (255, 80, 80), (80, 160, 255), (255, 210, 0), (200, 90, 255), (255, 140, 0),
           (0, 220, 255), (255, 0, 200), (150, 255, 0), (140, 100, 60), (255, 255, 255), (0, 120, 120),
           (120, 0, 60), (60, 60, 160), (200, 200, 120))
_NAME = re.compile(r"^[A-Za-z0-9][\w\-.' ]*$")


@contextmanager
def _named(source: str | Path) -> Iterator[None]:
    """A class-list error (raised without knowing where the list came from) prefixed with ``source``."""
    try:
        yield
    except EndopatError as err:
        raise EndopatError(f"{source}: {err}") from None


def _key(name: str) -> str:
    """Names compare without case, with spaces, dashes and underscores alike (``Cystic duct`` ==
    ``cystic_duct``)."""
    return re.sub(r"[\s_\-]+", "_", name.strip().lower())


@dataclass(frozen=True)
class Labels:
    """The classes of a segmentation target: ``names[i]`` is class id ``i`` (0 the background),
    ``colours[i]`` its RGB colour, ``ignore`` the id of unlabeled pixels (``None``: none)."""

    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...] = ()
    ignore: int | None = IGNORE

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise EndopatError(f"classes {list(self.names)}: a segmentation target needs at least two classes "
                               "(background and one more)")
        if len(self.names) > 254:
            raise EndopatError(f"classes: {len(self.names)} classes; at most 254 fit an 8-bit mask beside the ignore id")
        for name in self.names:
            if not isinstance(name, str) or not _NAME.match(name):
                raise EndopatError(f"class name {name!r}: use letters, digits, spaces, '_', '-' or '.'")
        keys = [_key(n) for n in self.names]
        if len(set(keys)) != len(keys):
            raise EndopatError(f"classes {list(self.names)}: two classes have the same name")
        if self.ignore is not None and not len(self.names) <= self.ignore <= 255:
            raise EndopatError(f"ignore id {self.ignore}: it must be above the class ids (>= {len(self.names)}) "
                               "and at most 255")
        colours = tuple(tuple(int(v) for v in c) for c in self.colours) or tuple(
            PALETTE[i % len(PALETTE)] for i in range(len(self.names)))
        if len(colours) != len(self.names) or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colours):
            raise EndopatError(f"class colours {list(self.colours)}: one R,G,B triple (0-255) per class")
        object.__setattr__(self, "colours", colours)

    # ------------------------------------------------------------------------------- the classes

    @classmethod
    def binary(cls, name: str = "instrument") -> "Labels":
        """Background and one foreground class: endopat's instrument segmentation."""
        return cls(("background", name))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def is_binary(self) -> bool:
        return self.num_classes == 2

    @property
    def foreground(self) -> tuple[int, ...]:
        """The ids that headline means average over (every class but the background)."""
        return tuple(range(1, self.num_classes))

    def id_of(self, name: str) -> int:
        """The id of a class named ``name`` (case, spaces and underscores aside), or an error listing them."""
        for i, n in enumerate(self.names):
            if _key(n) == _key(name):
                return i
        raise EndopatError(f"no class '{name}' (the classes: {', '.join(self.names)})")

    def palette(self) -> np.ndarray:
        """``(256, 3)`` uint8 colours by id (ignore: grey; unused ids black), for drawing id maps."""
        table = np.zeros((256, 3), np.uint8)
        table[: self.num_classes] = self.colours
        if self.ignore is not None:
            table[self.ignore] = (128, 128, 128)
        return table

    def hex_colour(self, i: int) -> str:
        return "#" + "".join(f"{v:02x}" for v in self.colours[i])

    def describe(self) -> str:
        """``0 background, 1 gallbladder, ... (ignore 255)``."""
        ignore = f" (ignore {self.ignore})" if self.ignore is not None else ""
        return ", ".join(f"{i} {n}" for i, n in enumerate(self.names)) + ignore

    # ------------------------------------------------------------------------------------ masks

    def check_ids(self, ids: np.ndarray, path: Path | str) -> np.ndarray:
        """A class-id mask as uint8; a value that is neither a class id nor the ignore id is an error
        naming the file and the values (a mask with shifted ids must not train silently)."""
        values = np.unique(ids)
        bad = [int(v) for v in values if not (0 <= v < self.num_classes or v == self.ignore)]
        if bad:
            raise EndopatError(f"{path}: mask values {', '.join(map(str, bad[:6]))}{' ...' if len(bad) > 6 else ''} "
                               f"are not class ids ({self.describe()})")
        return ids.astype(np.uint8)

    # ----------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict:
        """What checkpoints and ONNX metadata store (JSON)."""
        return {"names": list(self.names), "colours": [list(c) for c in self.colours], "ignore": self.ignore}

    @classmethod
    def from_dict(cls, data: dict | None, source: str = "labels") -> "Labels":
        """From :meth:`to_dict`'s form; ``None`` (a checkpoint from before classes were stored) is
        :data:`BINARY`. A malformed entry is a one-line error naming ``source``."""
        if data is None:
            return BINARY
        with reading(source, "class list"):
            if not isinstance(data, dict) or not isinstance(data.get("names"), list):
                raise EndopatError(f"{source}: its class list is not a mapping with 'names'")
            with _named(source):
                return cls(tuple(data["names"]), tuple(tuple(c) for c in data.get("colours") or ()),
                           data.get("ignore", IGNORE))

    @classmethod
    def parse(cls, names: list[str] | str, ignore: int | None = IGNORE, source: str = "--classes") -> "Labels":
        """From a list of names or a comma-separated string (``background,gallbladder,tool``), id = position."""
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        with reading(source, "class list"):
            with _named(source):
                return cls(tuple(names), ignore=ignore)

    @classmethod
    def read(cls, path: str | Path) -> "Labels":
        """A ``classes.txt``: one ``id name`` line per class, ids 0..C-1 in any order; a line whose
        name is ``ignore`` gives the ignore id (default 255); blank lines and ``#`` comments skipped."""
        path = Path(path)
        with reading(path, "class list"):
            names: dict[int, str] = {}
            ignore = IGNORE
            for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split(None, 1)
                if len(parts) != 2 or not parts[0].isdigit():
                    raise EndopatError(f"{path}: line {k} '{line[:60]}' is not 'ID NAME'")
                i, name = int(parts[0]), parts[1].strip()
                if _key(name) == "ignore":
                    ignore = i
                    continue
                if i in names:
                    raise EndopatError(f"{path}: id {i} is named twice")
                names[i] = name
            if sorted(names) != list(range(len(names))):
                raise EndopatError(f"{path}: class ids {sorted(names)} must be 0..{len(names) - 1}, 0 the background")
            with _named(path):
                return cls(tuple(names[i] for i in range(len(names))), ignore=ignore)


BINARY = Labels.binary()
CLASSES_FILE = "classes.txt"


def common_labels(labels: list[Labels], what: str = "the samples") -> Labels:
    """The one class list of several sources (train and validation data, a checkpoint and its
    data); a mismatch is an error naming both lists."""
    first = labels[0] if labels else BINARY
    for other in labels[1:]:
        if other.names != first.names or other.ignore != first.ignore:
            raise EndopatError(f"{what} disagree on the classes: [{first.describe()}] vs [{other.describe()}]")
    return first
