"""The demo: the whole method on synthetic data, small enough for a laptop CPU.

synthetic target-domain videos + a few labeled frames -> re-colorization pretraining -> baseline
and PAT fine-tuning with few labels -> evaluation on video-disjoint test frames -> a report folder
(``report.md`` + PNGs + CSVs). Every stage resumes: running the demo again on the same folder skips
what is finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from endopat.config import DiscriminatorConfig, FinetuneConfig, ModelConfig, PretrainConfig
from endopat.data.labeled import open_labeled
from endopat.data.synth import SynthSpec
from endopat.io import atomic_write_text


@dataclass(frozen=True)
class DemoPlan:
    synth: SynthSpec
    model: ModelConfig
    discriminator: DiscriminatorConfig
    pretrain_steps: int
    labels: tuple[int, ...]
    epochs: int
    early_stop: int
    batch_size: int = 8
    subsets: int = 1
    extra: dict = field(default_factory=dict)


def plan(quick: bool, seed: int) -> DemoPlan:
    if quick:
        return DemoPlan(
            synth=SynthSpec(site="target", seed=seed, size=128, videos=6, unlabeled_videos=4, frames=32,
                            label_every=4),
            model=ModelConfig(features=(8, 8, 16, 32, 64, 8), image_size=(96, 96)),
            discriminator=DiscriminatorConfig(width=0.25),
            pretrain_steps=250, labels=(6,), epochs=25, early_stop=10,
        )
    return DemoPlan(
        synth=SynthSpec(site="target", seed=seed, size=128, videos=8, unlabeled_videos=8, frames=48,
                        label_every=4),
        model=ModelConfig(features=(16, 16, 32, 64, 128, 16), image_size=(128, 128)),
        discriminator=DiscriminatorConfig(width=0.5),
        pretrain_steps=1200, labels=(4, 8, 16), epochs=60, early_stop=15,
    )


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, progress: bool = True,
             log=print) -> Path:
    from endopat.data.synth import generate
    from endopat.evaluate import evaluate, summarize, write_metrics_csv
    from endopat.finetune import finetune
    from endopat.pretrain import pretrain
    from endopat.report.tables import markdown_table, table_rows, write_csv

    out = Path(out)
    p = plan(quick, seed)
    t0 = time.time()
    timings = {}

    data = out / "data"
    manifest = data / "synth.json"
    if not manifest.is_file() or json.loads(manifest.read_text())["spec"] != asdict(p.synth):
        log(f"[1/4] generating synthetic endoscopy in {data}")
        generate(data, p.synth)
    timings["synth"] = time.time() - t0

    log(f"[2/4] re-colorization pretraining ({p.pretrain_steps} GAN steps)")
    t = time.time()
    pre_cfg = PretrainConfig(model=p.model, discriminator=p.discriminator, steps=p.pretrain_steps,
                             batch_size=p.batch_size, seed=seed,
                             sample_every=max(1, p.pretrain_steps // 4),
                             checkpoint_every=max(1, p.pretrain_steps // 10))
    generator = pretrain(data / "unlabeled", out / "pretrain", pre_cfg, progress=progress, log=log)
    timings["pretrain"] = time.time() - t

    splits = open_labeled(data / "labeled")
    log(f"[3/4] fine-tuning baseline and PAT with {', '.join(map(str, p.labels))} of "
        f"{len(splits['train'])} training labels; testing on {len(splits['test'])} frames of unseen videos")
    t = time.time()
    summaries = []
    for n in p.labels:
        for method, init in (("baseline", None), ("PAT", generator)):
            run = out / "finetune" / f"{method}_n{n}"
            cfg = FinetuneConfig(model=p.model, epochs=p.epochs, early_stop_patience=p.early_stop,
                                 batch_size=p.batch_size, max_labels=n, seed=seed)
            best = finetune(splits["train"], splits["val"], run, cfg, init=init, progress=progress,
                            log=lambda *a: None)
            rows = evaluate(best, splits["test"])
            write_metrics_csv(rows, run / "test_metrics.csv")
            summaries.append({"method": method, "labels": n, **summarize(rows)})
    timings["finetune+evaluate"] = time.time() - t

    log("[4/4] writing the report")
    table = table_rows(summaries)
    write_csv(table, out / "results.csv")
    timings["total"] = time.time() - t0
    report = write_report(out, p, table, timings)
    log(markdown_table(table))
    log(f"total {timings['total']:.0f} s")
    return report


def write_report(out: Path, p: DemoPlan, table: list[dict], timings: dict) -> Path:
    from endopat import colour
    from endopat.report.figures import plot_ab_histograms
    from endopat.report.tables import markdown_table

    hist = colour.ABHistogram.load(out / "pretrain" / "ab_histogram.json")
    plot_ab_histograms({"synthetic target": hist}, out / "ab_histogram.png")
    samples = sorted((out / "pretrain" / "samples").glob("step_*.png"))
    histories = sorted((out / "finetune").glob("*/history.png"))
    lines = [
        "# endopat demo report", "",
        "Synthetic target-domain endoscopy; U-Net pretrained by GAN re-colorization (PAT) versus the "
        "same U-Net trained from scratch (baseline), both fine-tuned with few labels and tested on "
        "frames of videos seen in neither training nor validation.", "",
        f"- images {p.model.image_size[0]}x{p.model.image_size[1]}, U-Net widths {list(p.model.features)}, "
        f"input {p.model.input}",
        f"- pretraining: {p.pretrain_steps} GAN steps, batch {p.batch_size}",
        f"- fine-tuning: up to {p.epochs} epochs, early stop after {p.early_stop} epochs without "
        "a better validation loss; best-on-validation checkpoint", "",
        "## Test Dice (DSC) and IoU per image", "",
        markdown_table(table), "",
        "Times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), "",
        "## Re-colorization (rows: grey input, re-coloured, original)", "",
    ]
    if samples:
        lines.append(f"![re-colorization]({samples[-1].relative_to(out)})")
    lines += ["", "## Pretraining losses", "", "![losses](pretrain/losses.png)", "",
              "## a/b colour distribution of the unlabeled frames (paper Fig. 4)", "",
              "![ab histogram](ab_histogram.png)", "", "## Fine-tuning curves", ""]
    lines += [f"![{h.parent.name}]({h.relative_to(out)})" for h in histories]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
