"""Commands of the study: study, report, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from endopat.cli.app import ProgressOpt, app, echo
from endopat.errors import EndopatError


@app.command()
def study(
    config: Path = typer.Argument(..., help="study YAML (see examples/demo.yaml, examples/paper.yaml)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder; running again resumes"),
    shard: Optional[str] = typer.Option(None, help="run only cells i, i+n, ... of the grid: i/n"),
    stage: str = typer.Option("all", help="all, stages (shared pretraining only) or cells"),
    report: bool = typer.Option(True, "--report/--no-report", help="write the report at the end"),
    workers: int = typer.Option(1, min=1, help="processes running stages and cells side by side (CPU; "
                                "each gets cpu_count/workers threads)"),
    method: list[str] = typer.Option([], "--method", help="run only this row's stages and cells (a method "
                                     "name; repeatable); the others wait for a later run of the same folder"),
    progress: bool = ProgressOpt,
) -> None:
    """The paper's experiments: label-fraction sweep x methods x subsets, then Table 1 and figures."""
    from endopat.study.config import load_study
    from endopat.study.grid import parse_shard
    from endopat.study.runner import run_study

    if stage not in ("all", "stages", "cells"):
        raise EndopatError(f"--stage '{stage}': choose all, stages or cells")
    cfg = load_study(config)
    counts = run_study(cfg, out, parse_shard(shard), stage, progress, echo, report, workers, tuple(method))
    echo(f"cells in this shard: {counts['cells']} (ran {counts['run']}, already finished {counts['skipped']})")
    if report:
        echo(f"report: {out / 'report' / 'report.md'} and report.html")


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="study run folder (merges every finished cell)"),
    vs: list[str] = typer.Option([], "--vs", help="also compare every method against this one (a method "
                                 "name; repeatable), e.g. a volume ablation's smaller row"),
    against: Optional[Path] = typer.Option(None, "--against", help="another run folder of the same split (e.g. "
                                           "the same study under the paper's protocol): each method's difference "
                                           "from the baseline in both, and the difference of those, into "
                                           "RUN/report/against-NAME.md"),
) -> None:
    """(Re)write a study's report from whatever cells are finished, e.g. after sharded runs."""
    from endopat.study.report import write_study_report
    from endopat.study.report_across import write_across_report
    from endopat.study.runner import reopen

    cfg, data = reopen(run, echo)
    if against is not None:
        other, _ = reopen(against, echo)
        echo(f"against {against}: {write_across_report(run, cfg, against, other, data.labels)}")
    path = write_study_report(run, cfg, data, vs=tuple(vs))
    echo(f"report: {path}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o"),
    quick: bool = typer.Option(False, "--quick", help="a version that takes under a minute"),
    data_seed: int = typer.Option(0, "--data-seed", min=0, help="another synthetic dataset, split and "
                                  "seeds: does the report's conclusion hold on it?"),
    workers: Optional[int] = typer.Option(None, min=1, help="processes side by side (default: one per "
                                          "core, at most 8)"),
    progress: bool = ProgressOpt,
) -> None:
    """The demo study on synthetic endoscopy (examples/demo.yaml): <= 10 minutes on 2 CPU cores."""
    from endopat.demo import run_demo

    report = run_demo(out, quick=quick, progress=progress, log=echo, data_seed=data_seed, workers=workers)
    echo(f"report: {report} (and report.html beside it)")
