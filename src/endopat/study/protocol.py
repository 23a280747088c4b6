"""The paper's protocol, one line away: ``protocol: paper`` in a study sets each part of how the
paper trained and tested (sec. 2.2.2, 2.3.2 and its Discussion) that is not given in the config,
and :func:`deviations` lists every setting in which a study still differs from the paper (the
report's header prints them).

The parts, each also a key of its own (a key given in the config wins over the protocol):

- ``model.input: L`` -- the generator's input channel, the segmenter's input in the paper;
- ``finetune.augment`` and ``supervised.augment`` all off -- "we have decided to train all
  methods applied in this paper with just the available training data (no augmentation)";
- ``unlabeled.<source>.test_frames: keep`` -- transductive pretraining: the paper's unlabeled
  videos held the test images' videos;
- ``validation: subsets`` -- "five randomly selected disjunct subsets of training and validation
  data": each label subset gets its own validation subset, the same fraction of the validation
  data, disjoint across subsets (endopat.data.splits.validation_subset).
"""

from __future__ import annotations

from typing import Any

from endopat.labels import BINARY, Labels

PROTOCOLS = ("endopat", "paper")
PAPER_FRACTIONS = {"1", "1/2", "1/4", "1/8", "1/16"}
NO_AUGMENT = {"flips": False, "rotate": False, "gain": 0.0}

BINARY_OUTPUT = ("segmentation output: one logit with binary cross-entropy (the paper: a two-class softmax, "
                 "eq. 6; the same decision rule, docs/method.md)")
# what no setting of a study changes, said in every paper-protocol report
FIXED = [
    "data: the paper fine-tunes on DS HD L (413 training, 119 validation, 277 test images) and pretrains "
    "on 30 videos (DS HD UL); a study uses its own labeled and unlabeled sources",
    BINARY_OUTPUT,
    "re-colorization loss weights and pretraining length: the paper does not give them (endopat: "
    "pretrain.recolor.loss.lam/phi 'auto', pretrain.steps)",
    "small training sets are repeated to at least finetune.min_samples_per_epoch images an epoch "
    "(the paper does not say how an epoch of 25 images was made)",
]


def _filled(defaults: dict[str, Any], given: Any) -> Any:
    """``given`` over ``defaults``; a section that is not a mapping is left for validation to name."""
    if given is None:
        return dict(defaults)
    return {**defaults, **given} if isinstance(given, dict) else given


def apply(data: dict[str, Any]) -> dict[str, Any]:
    """A raw study config with the paper's protocol filled in where it leaves a part unset."""
    if not isinstance(data, dict) or data.get("protocol") != "paper":
        return data
    out = dict(data)
    out["model"] = _filled({"input": "L"}, out.get("model"))
    for section in ("finetune", "supervised"):
        sec = _filled({}, out.get(section))
        if isinstance(sec, dict):
            sec["augment"] = _filled(NO_AUGMENT, sec.get("augment"))
        out[section] = sec
    out.setdefault("validation", "subsets")
    sources = out.get("unlabeled") or {}
    if isinstance(sources, dict):
        out["unlabeled"] = {k: {"test_frames": "keep", **({"path": v} if isinstance(v, str) else v)}
                            if isinstance(v, (str, dict)) else v for k, v in sources.items()}
    return out


def deviations(cfg, labels: Labels = BINARY) -> list[str]:
    """Every setting in which the study ``cfg`` (a StudyConfig) of ``labels`` (its data's classes)
    differs from the paper's protocol, in words, the settings that no config changes last."""
    out = []
    if not labels.is_binary:
        out.append(f"segmentation target: {len(labels.names)} classes ({', '.join(labels.names)}), a softmax over "
                   "them (the paper: instrument against background)")
    if cfg.model.input != "L":
        out.append(f"segmenter input {cfg.model.input} (the paper: the L channel)")
    for section in ("finetune", "supervised"):
        aug = getattr(cfg, section).augment
        on = [k for k, v in NO_AUGMENT.items() if getattr(aug, k) != v]
        if on and (section == "finetune" or any(m.supervised for m in cfg.methods)):
            out.append(f"{section} augmentation: {', '.join(on)} (the paper: none)")
    for name, src in cfg.unlabeled.items():
        if src.test_frames != "keep":
            out.append(f"pretraining source '{name}' leaves the test split's frames out (the paper: transductive, "
                       "its unlabeled videos held the test videos)")
    if cfg.validation != "subsets":
        out.append("every cell validates on the whole validation split (the paper: a validation subset per "
                   "label subset, disjoint across subsets)")
    if cfg.subsets != 5:
        out.append(f"{cfg.subsets} label subsets per fraction (the paper: five, where the data allow)")
    if set(cfg.fractions) != PAPER_FRACTIONS:
        out.append(f"label fractions {', '.join(cfg.fractions)} (the paper: 1, 1/2, 1/4, 1/8, 1/16 of 413)")
    ft = cfg.finetune
    if (ft.plateau_patience, ft.plateau_factor) != (10, 0.1):
        out.append(f"learning rate x{ft.plateau_factor} after {ft.plateau_patience} epochs without val-loss gain "
                   "(the paper: x0.1 after 10)")
    if ft.loss != "ce":
        out.append("fine-tuning loss: cross-entropy + soft Dice (the paper: cross-entropy, eq. 6)")
    if ft.early_stop_patience is not None:
        out.append(f"early stopping after {ft.early_stop_patience} epochs without val-loss gain, best val epoch "
                   "kept (the paper does not say)")
    if cfg.model.arch != "basic_unet" or any(m.arch for m in cfg.methods):
        out.append("networks other than the paper's U-Net")
    return out + [f for f in FIXED if labels.is_binary or f != BINARY_OUTPUT]
