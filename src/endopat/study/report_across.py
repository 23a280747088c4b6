"""Two study run folders of the same split side by side (``endopat report A --against B``): each
method's difference from the baseline in A and in B and the difference of those differences
(:mod:`endopat.report.across`), written to ``A/report/against-<B's folder name>.md`` and ``.csv``.

The two must share what pairs them: the test images (the same ids in both splits) and, at every
label fraction both ran, the same label subsets; otherwise the runs are refused in one line naming
what differs. The header names each study's protocol and the settings in which they differ.
"""

from __future__ import annotations

from pathlib import Path

from endopat.data.splits import Split
from endopat.errors import EndopatError
from endopat.io import atomic_write_text
from endopat.labels import BINARY, Labels
from endopat.report.across import across
from endopat.report.tables import write_csv
from endopat.study.config import StudyConfig
from endopat.study.protocol import FIXED, deviations
from endopat.study.report import collect

FIELDS = ["method", "fraction", "labels", "runs_a", "runs_b", "effect_a", "effect_a_low", "effect_a_high",
          "effect_a_df", "effect_b", "effect_b_low", "effect_b_high", "effect_b_df", "diff", "ci_low", "ci_high",
          "df", "verdict"]


def check_paired(a: Path, split_a: Split, b: Path, split_b: Split) -> None:
    """The two splits share their test images and the label subsets of every fraction both have."""
    if sorted(split_a.test) != sorted(split_b.test):
        raise EndopatError(f"{b}: its test images are not {a}'s ({len(split_b.test)} vs {len(split_a.test)}, "
                           f"{len(set(split_a.test) ^ set(split_b.test))} differ): two studies are compared "
                           "on one split")
    for f in sorted(set(split_a.subsets) & set(split_b.subsets)):
        if split_a.subsets[f] != split_b.subsets[f]:
            raise EndopatError(f"{b}: its label subsets at {f} are not {a}'s (another seed, pool or subsets: setting); "
                               "two studies are compared on the same subsets")


def write_across_report(run_a: str | Path, cfg_a: StudyConfig, run_b: str | Path, cfg_b: StudyConfig,
                        labels: Labels = BINARY) -> Path:
    """Write ``A/report/against-<B>.md`` and ``.csv`` (``labels``: the classes of the split both
    share); returns the markdown's path."""
    a, b = Path(run_a), Path(run_b)
    check_paired(a, Split.load(a / "split.json"), b, Split.load(b / "split.json"))
    rows = across(collect(a), collect(b), cfg_a.baseline, cfg_b.baseline)
    rep = a / "report"
    rep.mkdir(parents=True, exist_ok=True)
    write_csv(rows, rep / f"against-{b.name}.csv", FIELDS)
    path = rep / f"against-{b.name}.md"
    atomic_write_text(path, _markdown(a, cfg_a, b, cfg_b, rows, labels))
    return path


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:+.3f}, {hi:+.3f}]"


def _markdown(a: Path, cfg_a: StudyConfig, b: Path, cfg_b: StudyConfig, rows: list[dict], labels: Labels) -> str:
    lines = [f"# {cfg_a.name} (A) against {cfg_b.name} (B)", "",
             f"A: `{a}`, protocol `{cfg_a.protocol}`; B: `{b}`, protocol `{cfg_b.protocol}`. The same test images and "
             "label subsets (checked), so each row pairs them.", ""]
    for name, cfg in (("A", cfg_a), ("B", cfg_b)):
        dev = [d for d in deviations(cfg, labels) if d not in FIXED]  # FIXED: what no setting changes, the same in both
        lines.append(f"- {name} differs from the paper's protocol in: " + ("; ".join(dev) if dev else "no setting") + ".")
    lines += ["", "Each method's difference from its study's baseline in A and in B, and the difference of those "
              "differences, (M_A - B_A) - (M_B - B_B): does the protocol change what the method does? Mean DSC over "
              "runs; 95 % intervals from the calibrated inference (Student's t with the fewest run-level degrees of "
              "freedom: each study's pretraining runs are a level of their own; `bench/calibration.py --across`). "
              "The first row of each fraction compares the baselines themselves.", "",
              "| method | fraction | labels | runs A / B | vs baseline in A [95% CI] | vs baseline in B [95% CI] | "
              "A - B [95% CI] | df | verdict |", "|---|---|---:|---|---|---|---|---:|---|"]
    for r in rows:
        in_a = f"{r['effect_a']:+.3f} {_ci(r['effect_a_low'], r['effect_a_high'])}" if "effect_a" in r else "-"
        in_b = f"{r['effect_b']:+.3f} {_ci(r['effect_b_low'], r['effect_b_high'])}" if "effect_b" in r else "-"
        lines.append(f"| {r['method']} | {r['fraction']} | {r['labels'] if r['labels'] is not None else ''} | "
                     f"{r['runs_a']} / {r['runs_b']} | {in_a} | {in_b} | {r['diff']:+.3f} {_ci(r['ci_low'], r['ci_high'])} "
                     f"| {r['df']:.0f} | {r['verdict']} |")
    if not rows:
        lines.append("| (no label fraction with finished baseline cells in both) | | | | | | | | |")
    return "\n".join(lines) + "\n"
