"""The study grid: shared pretraining stages and independent fine-tune cells.

* a **pretrain stage** per (unlabeled source, auxiliary task) some method uses (run once, shared);
* a **supervised stage** per (pretrain source or none, extra labeled set) some method uses (the
  supervised pretraining of SOA, or the middle step of PAT-Ext), run once, shared;
* with ``pretrain_seeds: N``, each of those stages N times (repeat ``p`` with its own seed), and
  the cells of a method that starts from a stage once per pretraining repeat;
* a **cell** per method x label fraction x subset x pretraining repeat x fine-tuning repeat:
  fine-tune on that subset (with the fine-tuning repeat's own seed), evaluate on the test set.

Cells are ordered deterministically (method order of the config, then fraction, subset, pretraining
and fine-tuning repeat), and
shard ``i/n`` takes every cell whose index is ``i`` modulo ``n``: the shards partition the grid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from endopat.data.splits import Split, fraction_label, validation_subset
from endopat.errors import EndopatError
from endopat.study.config import Method, StudyConfig
from endopat.tasks import DEFAULT_TASK


@dataclass(frozen=True)
class Stage:
    kind: str  # "pretrain" | "supervised"
    source: str  # unlabeled source name, or extra labeled set name
    pretrain: str | None = None  # for supervised stages: the pretraining they start from
    task: str = DEFAULT_TASK  # the auxiliary task of the pretraining (its own, or the one started from)
    rep: int = 0  # pretraining repeat (``pretrain_seeds``); 0 keeps the key of a single run
    weights: str | None = None  # the encoder weights the first of the stages starts from
    steps: int | None = None  # the pretraining's own step count (a method's pretrain_steps), else the study's
    arch: str | None = None  # the method's own model.arch, else the study's

    @property
    def key(self) -> str:
        task = "" if self.task == DEFAULT_TASK else f"+{self.task}"  # the paper's task keeps the plain key
        if self.weights:
            task += "+w-" + re.sub(r"[^A-Za-z0-9]+", "-", self.weights).strip("-").lower()
        if self.steps:
            task += f"+s{self.steps}"
        if self.arch:
            task += f"+a-{self.arch}"
        tail = f"_p{self.rep}" if self.rep else ""
        if self.kind == "pretrain":
            return f"pretrain/{self.source}{task}{tail}"
        return f"supervised/{self.source}" + (f"+pat-{self.pretrain}{task}" if self.pretrain else "") + tail

    def seed(self, base: int) -> int:
        """The stage's seed: the study's for repeat 0, then one per repeat."""
        return base + 100 * self.rep


@dataclass(frozen=True)
class Cell:
    index: int
    method: Method
    fraction: str
    subset: int
    repeat: int = 0  # fine-tuning repeat (``finetune_seeds``); 0 keeps the key of a single run
    pretrain_rep: int = 0  # the pretraining repeat its stage comes from (``pretrain_seeds``)
    round: int = 0  # labeling round (1, 2, ...) of a method with selection rounds; 0: a one-shot draw
    labels: int = 0  # a round's label count

    @property
    def key(self) -> str:
        tail = (f"_p{self.pretrain_rep}" if self.pretrain_rep else "") + (f"_r{self.repeat}" if self.repeat else "")
        return f"{self.method.slug}/f{self.fraction.replace('/', '-')}_s{self.subset}{tail}"

    def seed(self, base: int) -> int:
        """The fine-tuning seed: one per subset and repeat (the same for every pretraining repeat,
        so that pretraining repeats differ only in their pretraining)."""
        return base + self.subset + 1000 * self.repeat


def stages_of(method: Method, default_task: str = DEFAULT_TASK, rep: int = 0) -> list[Stage]:
    out, task, w, steps = [], method.task or default_task, method.encoder_weights, method.pretrain_steps
    if method.pretrain:
        out.append(Stage("pretrain", method.pretrain, task=task, rep=rep, weights=w, steps=steps, arch=method.arch))
    if method.supervised:
        out.append(Stage("supervised", method.supervised, method.pretrain, task=task, rep=rep, weights=w,
                         steps=steps, arch=method.arch))
    return out


def init_stage(method: Method, default_task: str = DEFAULT_TASK, rep: int = 0) -> Stage | None:
    """The stage (of pretraining repeat ``rep``) whose checkpoint a method's cells start from."""
    stages = stages_of(method, default_task, rep)
    return stages[-1] if stages else None


def pretrain_reps(cfg: StudyConfig, method: Method) -> int:
    """Pretraining repeats of a method: ``pretrain_seeds`` when it starts from a stage, else 1."""
    return cfg.pretrain_seeds if stages_of(method) else 1


def all_stages(cfg: StudyConfig, methods: set[str] | None = None) -> list[Stage]:
    """Every stage of the study (of the rows named in ``methods`` only, when given), each once."""
    seen: dict[str, Stage] = {}
    for rep in range(cfg.pretrain_seeds):
        for m in cfg.methods:
            if methods is not None and m.name not in methods:
                continue
            for s in stages_of(m, cfg.pretrain.task, rep):
                seen.setdefault(s.key, s)
    return list(seen.values())


def only_methods(cfg: StudyConfig, names: tuple[str, ...]) -> set[str]:
    """The rows ``names`` picks (all when empty), each checked against the config's rows."""
    known = [m.name for m in cfg.methods]
    for n in names:
        if n not in known:
            raise EndopatError(f"--method '{n}': the study has no such row (its rows: {', '.join(known)})")
    return set(names or known)


def round_cells(cell: Cell, pool: int) -> list[Cell]:
    """The rounds of ``cell``'s chain, first to last (a round's cell needs the one before it)."""
    rounds = cell.method.selection.rounds
    return [Cell(cell.index, cell.method, fraction_label(f"{n}/{pool}"), cell.subset, cell.repeat,
                 cell.pretrain_rep, k + 1, n) for k, n in enumerate(rounds)]


def cells(cfg: StudyConfig, split: Split) -> list[Cell]:
    out = []
    for m in cfg.methods:
        if m.selection.rounds:  # labeling rounds: a chain per (subset, pretraining run, fine-tuning seed)
            if m.selection.rounds[-1] > len(split.train):
                raise EndopatError(f"method '{m.name}': rounds up to {m.selection.rounds[-1]} labels, the "
                                   f"training pool has {len(split.train)} frames")
            for j in range(cfg.subsets):
                for p in range(pretrain_reps(cfg, m)):
                    for r in range(cfg.finetune_seeds):
                        for c in round_cells(Cell(0, m, "1", j, r, p), len(split.train)):
                            out.append(Cell(len(out), m, c.fraction, j, r, p, c.round, c.labels))
            continue
        for f in m.fractions or cfg.fractions:
            label = fraction_label(f)
            n_subsets = min(cfg.subsets, len(split.subsets.get(label, [])))
            for j in range(n_subsets):
                for p in range(pretrain_reps(cfg, m)):
                    for r in range(cfg.finetune_seeds):
                        out.append(Cell(len(out), m, label, j, r, p))
    return out


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
        assert n >= 1 and 0 <= i < n
    except (ValueError, AssertionError):
        raise EndopatError(f"--shard '{text}': write i/n with 0 <= i < n, e.g. 3/10") from None
    return i, n


def shard(items: list[Cell], i: int, n: int) -> list[Cell]:
    return [c for c in items if c.index % n == i]


def validation_ids(cfg: StudyConfig, split, cell: Cell) -> list[str]:
    """What ``cell`` validates on: the whole validation split, or (``validation: subsets``, the
    paper's) its label fraction's share of it, disjoint across label subsets. A labeling round
    (a label count, not a fraction) validates on the whole split."""
    if cfg.validation == "whole" or cell.round:
        return list(split.val)
    return validation_subset(split.val, cell.fraction, cell.subset, cfg.seed)
