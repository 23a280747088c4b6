"""A study's run folder before any training: its data and split, the pretraining sources and
their test-split frames, and the checks that a folder holds this study and its weights load.

Run folder (:mod:`endopat.study.runner` fills the rest)::

    study.json      the config (a resumed run must bring the same)
    split.json      the split every cell uses (made once, then only read)
    sources/<name>/ each pretraining source's test-split frames (overlap.json) and view without them
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import ValidationError

from endopat.data.labeled import Sample, chunked
from endopat.data.readers import open_labeled
from endopat.data.splits import Split, make_split
from endopat.data.synth import SynthSpec, generate
from endopat.encoder_weights import check_weights_file
from endopat.errors import EndopatError, describe, reading
from endopat.io import read_cache
from endopat.labels import BINARY, Labels
from endopat.study.config import LabeledSource, StudyConfig, study_from_dict
from endopat.study.grid import all_stages
from endopat.study.sources import Overlap, prepare_source

Log = Callable[[str], None]


@dataclass
class StudyData:
    samples: list[Sample]
    split: Split
    sources: dict[str, Overlap] = field(default_factory=dict)  # pretraining sources and the test split

    def ids(self, ids: list[str]) -> list[Sample]:
        return self.split.resolve(self.samples, ids)

    @property
    def labels(self) -> Labels:
        """The study's classes (its labeled data's)."""
        return self.samples[0].labels if self.samples else BINARY


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock, so that shards running at once do not run one stage twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def generate_synthetic(cfg: StudyConfig, out: Path, log: Log) -> None:
    for d in cfg.synth:
        target = cfg.resolve(d.out, out)
        spec = SynthSpec.model_validate(d.model_dump(exclude={"out"}))
        manifest = target / "synth.json"
        with file_lock(out / "locks" / f"synth-{target.name}.lock"):
            made = read_cache(manifest, dict[str, Any])  # None: not made yet, or damaged (made again)
            if made is not None and made.get("spec") == spec.model_dump():
                continue
            log(f"generating synthetic '{d.site}' data in {target}")
            generate(target, spec)


def all_samples(src: LabeledSource, root: Path, cfg: StudyConfig) -> tuple[list[Sample], dict]:
    parts = open_labeled(cfg.resolve(src.path, root), src.layout, src.mask_format(), skip_bad=src.skip_bad)
    if src.chunk:
        parts = {k: chunked(v, src.chunk) for k, v in parts.items()}
    return [s for v in parts.values() for s in v], parts


def prepare(cfg: StudyConfig, out: Path, log: Log = print) -> StudyData:
    """Synthetic data (if configured), the target samples, and the split (made once, then reused)."""
    generate_synthetic(cfg, out, log)
    samples, parts = all_samples(cfg.labeled, out, cfg)
    split_path = cfg.resolve(cfg.split, out) if cfg.split else out / "split.json"
    with file_lock(out / "locks" / "split.lock"):
        if split_path.is_file():
            split = Split.load(split_path)
        else:
            split = make_split(samples, cfg.seed, cfg.val_fraction, cfg.test_fraction, cfg.fractions,
                               cfg.subsets, source=cfg.labeled.path, layout=cfg.labeled.layout,
                               predefined=None if "all" in parts else parts,
                               test_groups=cfg.test_groups, val_groups=cfg.val_groups, subsets_by=cfg.subsets_by)
            split.save(split_path)
            log(f"split: train {len(split.train)}, val {len(split.val)}, test {len(split.test)} -> {split_path}")
    data = StudyData(samples, split)
    test = data.ids(split.test)
    pretraining = [s.source for s in all_stages(cfg) if s.kind == "pretrain"]
    for name in dict.fromkeys(pretraining + [m.semi.source for m in cfg.methods if m.semi is not None]):
        src = cfg.unlabeled[name]
        with file_lock(out / "locks" / f"source-{name}.lock"):
            data.sources[name] = overlap = prepare_source(name, cfg.resolve(src.path, out), test, src.test_frames,
                                                          out, src.every)
        log(f"pretraining source '{name}': {overlap.sentence()}")
    return data


def reopen(run: str | Path, log: Log = print) -> tuple[StudyConfig, StudyData]:
    """A study's config and data from its run folder (``study.json``), e.g. to write its report
    again after sharded runs."""
    run = Path(run)
    meta = run / "study.json"
    if not meta.is_file():
        raise EndopatError(f"{run}: not a study run folder (no study.json)")
    with reading(meta, "study.json"):
        saved = json.loads(meta.read_text())
        cfg = study_from_dict(saved, str(meta))
    return cfg, prepare(cfg, run, log)


def _changed_keys(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in sorted(set(old) | set(new))
                for k in _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _rows_added(old: dict, new: dict) -> tuple[dict, list[str]]:
    """``old`` with the rows (methods) ``new`` adds, and the unlabeled sources and weights files
    they name, taken over, and the added rows' names; unchanged when a saved row is missing from
    ``new`` or differs there (then the comparison names ``methods``).

    A row's cells and stages are keyed by its name and seeded by the study's seed, the subset and
    the repeat, never by its place in the list, so the finished cells of the saved rows are the
    cells the longer config would compute: adding rows extends a run without changing it."""
    rows = [r for r in (old.get("methods"), new.get("methods")) if isinstance(r, list) and all(isinstance(m, dict) for m in r)]
    if len(rows) < 2:
        return old, []
    saved, now = ({m.get("name"): m for m in r} for r in rows)
    if any(now.get(name) != m for name, m in saved.items()):
        return old, []
    merged = {**old, "methods": new["methods"]}
    for key in ("unlabeled", "weights"):  # entries the added rows need; the saved ones unchanged
        was, is_ = old.get(key), new.get(key)
        if isinstance(was, dict) and isinstance(is_, dict) and all(is_.get(k) == v for k, v in was.items()):
            merged[key] = is_
    return merged, [n for n in now if n not in saved]


def check_same_study(cfg: StudyConfig, out: Path) -> list[str]:
    """Refuse to resume a run folder whose finished work came from another config (a changed
    setting, or a changed default of a newer endopat), which would mix old and new results.
    Rows added to the config (:func:`_rows_added`) are not a change: their names are returned.

    The saved config is read through today's ``StudyConfig`` first, so a setting that only moved
    (re-colorization's keys into ``pretrain.recolor``) or a key added since, whose default keeps
    the old behaviour (a method's ``task``), is not a change; an old default that differs from
    today's is, since every saved config lists every value."""

    path = out / "study.json"
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text())
        if not isinstance(old, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as exc:
        raise EndopatError(f"{path}: unreadable ({describe(exc)}); move it away to start this run folder again") from None
    if isinstance(old.get("unlabeled"), dict):  # before test_frames existed, every frame was pretrained on
        old["unlabeled"] = {k: {"path": v, "test_frames": "keep"} if isinstance(v, str) else v
                            for k, v in old["unlabeled"].items()}
    try:
        old = json.loads(StudyConfig.model_validate(old).model_dump_json())
    except ValidationError:
        pass  # compared as written: every key it does not share with this config is named
    new = json.loads(cfg.model_dump_json())
    old, added = _rows_added(old, new) if isinstance(old, dict) else (old, [])
    changed = _changed_keys(old, new)
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise EndopatError(f"{out}: holds a study run with another config (changed: {shown}); "
                           "resume it with the same config (rows may be added), or give a new --out")
    return added


def check_paths(cfg: StudyConfig, out: Path) -> None:
    """The labeled folder and every unlabeled source exist (before anything is written; synthetic
    data the study makes itself is not there yet and is not checked)."""
    made = {cfg.resolve(d.out, out) for d in cfg.synth}
    for what, path in [("labeled", cfg.labeled.path), *((f"unlabeled '{k}'", v.path) for k, v in cfg.unlabeled.items())]:
        p = cfg.resolve(path, out)
        if not p.exists() and not any(p == m or m in p.parents for m in made):
            raise EndopatError(f"{p}: not found ({what} in the study config)")


def check_weights(cfg: StudyConfig, out: Path) -> None:
    """Every encoder weights file the methods name loads onto the study's network (a wrong or
    truncated file fails here, before any stage runs)."""

    for name, arch in dict.fromkeys((m.encoder_weights, m.arch) for m in cfg.methods if m.encoder_weights):
        check_weights_file(cfg.model_for(arch=arch), cfg.weights_file(name, out))
