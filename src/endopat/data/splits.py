"""Reproducible splits: group-disjoint train/val/test and the paper's label-fraction subsets.

The paper (section 2.3.2) trains on k*N labeled images, k in {1, 1/2, 1/4, 1/8, 1/16}, with up to five
disjoint random subsets per k, and tests every model on one fixed test set whose videos are disjoint
from the training and validation videos. A :class:`Split` holds all of it, by sample id, and is
written to a JSON file that every later run reads, so a study gives the same cells on any machine.

* A source with ``train/ val/ test/`` folders keeps them. Otherwise groups (videos, procedures) are
  shuffled with the seed and assigned whole to test, val and train; ids a dataset assigns to its own
  test split (Kvasir's ``test.txt``) stay in test.
* Subsets of fraction k have ``round(k * N)`` images (at least 1); subset j of k is the j-th block of
  one seeded permutation of the training ids, so the subsets of one k are disjoint, and there are
  ``min(max_subsets, floor(1 / k))`` of them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ValidationError

from endopat.data.labeled import Sample
from endopat.data.readers import open_labeled
from endopat.errors import EndopatError, reading, validation_message
from endopat.seeds import check_seed
from endopat.io import atomic_write_text, output_file, output_folder

DEFAULT_FRACTIONS = ("1", "1/2", "1/4", "1/8", "1/16")
VERSION = 1


def parse_fraction(text: str | float) -> Fraction:
    try:
        f = Fraction(str(text)).limit_denominator(1 << 16)
    except (ValueError, ZeroDivisionError):
        raise EndopatError(f"'{text}' is not a fraction (write e.g. 1/8 or 0.125)") from None
    if not 0 < f <= 1:
        raise EndopatError(f"label fraction {text} must be in (0, 1]")
    return f


def fraction_label(text: str | float) -> str:
    f = parse_fraction(text)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


class _SplitFile(BaseModel):
    """What a split file must hold (ids are strings); anything else makes it "not a readable split file"."""

    train: list[str]
    val: list[str]
    test: list[str]
    subsets: dict[str, list[list[str]]] = {}
    seed: int = 0
    source: str = ""
    layout: str | None = None


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]
    subsets: dict[str, list[list[str]]] = field(default_factory=dict)
    seed: int = 0
    source: str = ""
    layout: str | None = None

    def to_json(self) -> str:
        return json.dumps({"version": VERSION, "source": self.source, "layout": self.layout,
                           "seed": self.seed, "train": self.train, "val": self.val, "test": self.test,
                           "subsets": self.subsets}, indent=1)

    def save(self, path: str | Path) -> Path:
        atomic_write_text(output_file(path), self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        path = Path(path)
        if not path.is_file():
            raise EndopatError(f"{path}: split file not found")
        with reading(path, "split file"):
            try:
                d = _SplitFile.model_validate_json(path.read_bytes())
            except ValidationError as err:
                raise EndopatError(f"{path}: not a split file ({validation_message(err)})") from None
        return cls(d.train, d.val, d.test, d.subsets, d.seed, d.source, d.layout)

    def subset(self, fraction: str, index: int) -> list[str]:
        key = fraction_label(fraction)
        if key not in self.subsets:
            raise EndopatError(f"split has no label fraction {key} (has {', '.join(self.subsets)})")
        if not 0 <= index < len(self.subsets[key]):
            raise EndopatError(f"label fraction {key} has {len(self.subsets[key])} subsets, not {index + 1}")
        return self.subsets[key][index]

    def resolve(self, samples: Sequence[Sample], ids: Sequence[str]) -> list[Sample]:
        """The samples with these ids (in the split's order); an unknown id is an error."""
        by_id = {s.id: s for s in samples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise EndopatError(f"split refers to {len(missing)} samples not in the data, e.g. '{missing[0]}'"
                               f" (was the split made from {self.source or 'another source'}?)")
        return [by_id[i] for i in ids]


def spread_over_groups(train: Sequence[str], groups: dict[str, str], seed: int = 0) -> list[str]:
    """``train`` reordered so that consecutive ids come from different groups (videos): the groups in
    a seeded order, each one's frames shuffled, then one frame of each group per round. A run of k
    ids then spans min(k, groups) videos, and the next run the videos after those."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[str]] = {}
    for i in train:
        by_group.setdefault(groups[i], []).append(i)
    names = sorted(by_group)
    names = [names[k] for k in rng.permutation(len(names))]
    queues = [[by_group[g][k] for k in rng.permutation(len(by_group[g]))] for g in names]
    return [q[r] for r in range(max(map(len, queues), default=0)) for q in queues if r < len(q)]


def label_subsets(train: Sequence[str], fractions: Sequence[str] = DEFAULT_FRACTIONS,
                  max_subsets: int = 5, seed: int = 0, groups: dict[str, str] | None = None
                  ) -> dict[str, list[list[str]]]:
    """Disjoint label subsets per fraction: consecutive runs of a seeded order of ``train`` — random
    frames, or with ``groups`` (id -> video) frames spread over as many videos as possible
    (:func:`spread_over_groups`)."""
    n = len(train)
    order = (spread_over_groups(train, groups, seed) if groups is not None
             else [train[i] for i in np.random.default_rng(seed).permutation(n)])
    out = {}
    for text in fractions:
        k = parse_fraction(text)
        size = max(1, round(k * n))
        count = max(1, min(max_subsets, math.floor(1 / k), n // size))
        out[fraction_label(text)] = [sorted(order[j * size : (j + 1) * size]) for j in range(count)]
    return out


def validation_subset(val: Sequence[str], fraction: str, subset: int, seed: int = 0) -> list[str]:
    """The paper's validation data of label subset ``subset`` at ``fraction``: that share of the
    validation ids, disjoint across subsets (the validation pool shuffled with ``seed`` and cut
    into as many whole subsets as it holds; a subset index beyond them wraps around)."""
    n = len(val)
    k = parse_fraction(fraction)
    size = max(1, round(k * n))
    count = max(1, min(math.floor(1 / k), n // size))
    order = [val[i] for i in np.random.default_rng(seed).permutation(n)]
    j = subset % count
    return sorted(order[j * size : (j + 1) * size])


def make_split(samples: Sequence[Sample], seed: int = 0, val_fraction: float = 0.15,
               test_fraction: float = 0.25, fractions: Sequence[str] = DEFAULT_FRACTIONS,
               max_subsets: int = 5, source: str = "", layout: str | None = None,
               predefined: dict[str, Sequence[Sample]] | None = None,
               test_groups: Sequence[str] = (), val_groups: Sequence[str] = (), subsets_by: str = "frame") -> Split:
    """Group-disjoint split of ``samples`` (or the ``predefined`` train/val/test folders).

    ``test_groups`` / ``val_groups`` name groups (videos, surgeries) that go to test / val; the
    fractions then only draw the parts not named (none when both are named: the rest is train).
    ``subsets_by``: ``frame`` (label subsets of random frames) or ``video`` (spread over videos).
    """
    check_seed(seed, "split")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:  # NaN too
            raise EndopatError(f"split: {name} {value} must be in [0, 1)")
    if max_subsets < 1:
        raise EndopatError(f"split: subsets {max_subsets} must be at least 1")
    if predefined:
        if not {"train", "val", "test"} <= set(predefined):
            raise EndopatError("split folders must include train/, val/ and test/")
        train, val, test = ([s.id for s in predefined[k]] for k in ("train", "val", "test"))
    else:
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            raise EndopatError("sample ids are not unique; cannot split")
        all_groups = {s.group for s in samples}
        for g in [*test_groups, *val_groups]:
            if g not in all_groups:
                raise EndopatError(f"split: no group '{g}' in the data (groups: {', '.join(sorted(all_groups))})")
        if set(test_groups) & set(val_groups):
            raise EndopatError("split: a group cannot be both a test and a validation group")
        fixed_test = {s.group for s in samples if s.split == "test"} | set(test_groups)
        groups = sorted(all_groups - fixed_test - set(val_groups))
        if len(groups) + bool(fixed_test) + bool(val_groups) < 3:
            raise EndopatError(f"need at least 3 groups (videos) for a group-disjoint train/val/test "
                               f"split, found {len(all_groups)}")
        rng = np.random.default_rng(seed)
        groups = [groups[i] for i in rng.permutation(len(groups))]
        n_test = 0 if fixed_test else max(1, round(test_fraction * len(groups)))
        n_val = 0 if val_groups else max(1, round(val_fraction * len(all_groups)))
        test_set = set(groups[:n_test]) | fixed_test
        val_set = set(groups[n_test : n_test + n_val]) | set(val_groups)
        if len(groups) - n_test - n_val < 1:
            raise EndopatError("too few groups (videos) left for training after val/test")
        train = [s.id for s in samples if s.group not in test_set | val_set]
        val = [s.id for s in samples if s.group in val_set]
        test = [s.id for s in samples if s.group in test_set]
    groups = {s.id: s.group for s in samples} if subsets_by == "video" else None
    if groups is not None and predefined:
        groups = {s.id: s.group for part in predefined.values() for s in part}
    return Split(train, val, test, label_subsets(train, fractions, max_subsets, seed, groups), seed, source, layout)


def split_in(folder: str | Path, samples: Sequence[Sample], seed: int = 0, source: str = "",
             layout: str | None = None, log=print) -> Split:
    """The split of a labeled folder without train/ val/ test/: ``folder/split.json`` when it is
    there (a resumed run reuses it, and evaluation finds it beside the checkpoint), else a new
    group-disjoint one (:func:`make_split`, seeded), saved there and announced with its counts."""
    path = Path(folder) / "split.json"
    if path.is_file():
        split = Split.load(path)
        known = {s.id for s in samples}
        missing = [i for i in split.train + split.val + split.test if i not in known]
        if missing:
            raise EndopatError(f"{path}: names {len(missing)} samples the data does not have (e.g. "
                               f"'{missing[0]}'); it belongs to other data: move it away or give another --out")
        return split
    split = make_split(samples, seed, source=source, layout=layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = lambda ids: len({s.group for s in samples if s.id in set(ids)})  # noqa: E731
    log(f"split by group (no train/ val/ test/ folders): train {len(split.train)} images "
        f"({groups(split.train)} groups), val {len(split.val)} ({groups(split.val)}), "
        f"test {len(split.test)} ({groups(split.test)}) -> {split.save(path)}")
    return split


def split_source(src: str | Path, out: str | Path, layout: str | None = None, seed: int = 0,
                 fractions: Sequence[str] = DEFAULT_FRACTIONS, subsets: int = 5, val_fraction: float = 0.15,
                 test_fraction: float = 0.25, test_groups: Sequence[str] = (), val_groups: Sequence[str] = ()
                 ) -> Split:
    """``endopat split``: a group-disjoint split of a labeled source (its own train/ val/ test/
    folders kept when it has them) with label-fraction subsets, saved to the JSON file ``out``."""
    output_file(out)
    parts = open_labeled(src, layout)
    samples = [s for v in parts.values() for s in v]
    sp = make_split(samples, seed, val_fraction, test_fraction, list(fractions), subsets, source=str(src),
                    layout=layout, predefined=None if "all" in parts else parts, test_groups=list(test_groups),
                    val_groups=list(val_groups))
    sp.save(out)
    return sp


def train_val(data: str | Path, out: str | Path, split_file: str | Path | None = None, fraction: str | None = None,
              subset: int = 0, layout: str | None = None, seed: int = 0, mask_format=None,
              log=print) -> tuple[list[Sample], list[Sample]]:
    """The training and validation samples of a labeled source for a run in ``out``: from
    ``split_file`` (with ``fraction``/``subset``, one label subset of it), the source's train/ and
    val/ folders, or a group-disjoint split made in ``out`` (:func:`split_in`; reused on resume)."""

    output_folder(out)
    parts = open_labeled(data, layout, mask_format)
    samples = [s for v in parts.values() for s in v]
    if split_file is not None:
        sp = Split.load(split_file)
    elif "all" in parts:
        sp = split_in(out, samples, seed, source=str(data), layout=layout, log=log)
    else:
        if fraction:
            raise EndopatError("--fraction needs --split with train/ val/ folders (make one with `endopat split`)")
        for needed in ("train", "val"):
            if needed not in parts:
                raise EndopatError(f"{data}: no {needed}/ folder (expected train/ and val/, or pass --split)")
        return parts["train"], parts["val"]
    train_ids = sp.subset(fraction, subset) if fraction else sp.train
    return sp.resolve(samples, train_ids), sp.resolve(samples, sp.val)


def part_to_score(data: str | Path, part: str = "test", split_file: str | Path | None = None,
                  model: str | Path | None = None, layout: str | None = None, mask_format=None,
                  log=print) -> list[Sample]:
    """The samples to score: ``part`` (train, val or test) of ``split_file``, or of the split
    ``finetune`` made beside ``model`` for a folder without parts, else the source's ``part``
    folder (or the whole source when it has none)."""

    parts = open_labeled(data, layout, mask_format)
    beside = Path(model).parent / "split.json" if model is not None else None
    if split_file is None and "all" in parts and beside is not None and beside.is_file():
        split_file = beside
        log(f"using the split the model was trained with: {beside}")
    if split_file is not None:
        sp = Split.load(split_file)
        if part not in ("train", "val", "test"):
            raise EndopatError(f"--split-name must be train, val or test, not '{part}'")
        return sp.resolve([s for v in parts.values() for s in v], getattr(sp, part))
    samples = parts.get(part, parts.get("all"))
    if samples is None:
        raise EndopatError(f"{data}: no {part}/ folder")
    return samples
