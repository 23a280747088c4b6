"""What a study cost: the wall time each pretraining stage and each method's cells took, read from
the run folder (``stages/*/*/done.json``, ``cells/*/*/cell.json``: every run records its own).

A run's time is that of the process that finished it: a run resumed after a kill counts from its
resumption, and runs that shared the cores (``--workers``, or other work) ran slower. The total is
the sum of the workers' busy time, longer than the study's elapsed time by up to the number of
workers."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Mapping

from endopat.io import read_cache


def compute_rows(out: Path, cells: list[dict], order: list[str], planned: Mapping[str, int] = {},
                 kinds: Mapping[str, str] = {}) -> list[dict]:
    """One row per finished stage, then one per method (its cells summed; ``planned``: each method's
    cells in the whole grid, so a study still running says how far each row is and how long it has
    to come; ``kinds``: a method's kind of cell, e.g. semi-supervised, whose rate a row not begun
    takes), then the total."""
    rows = []
    for done in sorted(Path(out).glob("stages/*/*/done.json")):
        seconds = (read_cache(done, dict[str, Any]) or {}).get("seconds")  # a damaged record: no row
        if isinstance(seconds, (int, float)):
            rows.append({"what": f"stage {done.parent.parent.name}/{done.parent.name}", "runs": 1,
                         "seconds": float(seconds)})
    per_method: dict[str, list[float]] = defaultdict(list)
    for c in cells:
        if c.get("seconds") is not None:
            per_method[c["method"]].append(float(c["seconds"]))
    for method in planned:  # rows not started yet: nothing spent, all to come
        per_method.setdefault(method, [])
    for method in sorted(per_method, key=lambda m: order.index(m) if m in order else len(order)):
        rows.append({"what": f"cells of {method}", "runs": len(per_method[method]), "kind": kinds.get(method),
                     "planned": planned.get(method), "seconds": sum(per_method[method])})
    if rows:
        rows.append({"what": "total", "runs": sum(r["runs"] for r in rows), "seconds": sum(r["seconds"] for r in rows)})
    for r in rows:
        r["hours"] = r["seconds"] / 3600
        r["minutes_per_run"] = r["seconds"] / 60 / r["runs"] if r["runs"] else None
    _to_come(rows)
    return rows


def _to_come(rows: list[dict]) -> None:
    """Each method row's cells still to run, in hours of one worker at its own rate so far (a row
    not begun: at the mean finished cell's rate of its kind, else of all); the total row sums them.
    An estimate: the rates are those of the runs so far, on whatever shared the cores."""
    cell_rows = [r for r in rows if r.get("planned") is not None]

    def mean(kind=None) -> float | None:
        done = [r for r in cell_rows if r["runs"] and (kind is None or r["kind"] == kind)]
        return sum(r["seconds"] for r in done) / sum(r["runs"] for r in done) if done else None

    for r in cell_rows:
        left = max(0, r["planned"] - r["runs"])
        rate = r["seconds"] / r["runs"] if r["runs"] else (mean(r["kind"]) if r["kind"] else None) or mean()
        r["hours_to_come"] = None if left and rate is None else left * (rate or 0) / 3600
    if rows and cell_rows:
        known = [r["hours_to_come"] for r in cell_rows]
        rows[-1]["hours_to_come"] = None if None in known else sum(known)


TEXT = ("Each run's own wall time, summed per pretraining stage and per method (the process that finished "
        "each run: a run resumed after a kill counts from its resumption; runs that shared the cores each "
        "count their whole time).")


def machines(cells: list[dict]) -> list[tuple[str, int]]:
    """Each machine (device, CPU kernels, library versions: ``endopat.machine.machine``) the cells
    were computed on, with its count of cells, most first; cells that recorded none are left out."""
    seen = Counter(", ".join(f"{k} {v}" for k, v in c["machine"].items())
                   for c in cells if isinstance(c.get("machine"), dict))
    return seen.most_common()


MACHINES_TEXT = ("The cells were computed on more than one machine. A cell is bit-identical only on the same "
                 "device, CPU kernels and library versions; on another it differs as under another seed, "
                 "which the intervals hold as run-to-run variation, but a row and its baseline computed "
                 "on different machines differ by that too:")


def markdown(rows: list[dict], cells: list[dict] = ()) -> list[str]:
    """The report's section (empty when no run recorded its time), and the machines when more than one."""
    if not rows:
        return []
    several = machines(list(cells))
    tail = ([MACHINES_TEXT, "", *(f"- {n} cells: {m}" for m, n in several), ""] if len(several) > 1 else [])
    if not running(rows):  # finished: no estimate
        return ["## Compute", "", TEXT, "",
                "| what | runs | hours | minutes per run |", "|---|---:|---:|---:|",
                *(f"| {r['what']} | {runs(r)} | {r['hours']:.2f} | {per_run(r)} |" for r in rows), "", *tail]
    return ["## Compute", "", TEXT + TO_COME_TEXT, "",
            "| what | runs | hours | minutes per run | hours to come (est.) |", "|---|---:|---:|---:|---:|",
            *(f"| {r['what']} | {runs(r)} | {r['hours']:.2f} | {per_run(r)} | {to_come(r)} |" for r in rows), "",
            *tail]


TO_COME_TEXT = (" Hours to come: each row's cells not yet run, at the row's own minutes per run so far (a row "
                "not begun: at the mean finished cell's of its kind, semi-supervised or not, else of all), in one "
                "worker's time; an estimate that holds while the cores are shared as they were.")


def running(rows: list[dict]) -> bool:
    """Whether any row has cells to come (or an unknown number of hours of them)."""
    return any("hours_to_come" in r and r["hours_to_come"] != 0 for r in rows)


def to_come(row: dict) -> str:
    if "hours_to_come" not in row:
        return ""
    return "?" if row["hours_to_come"] is None else f"{row['hours_to_come']:.2f}"


def per_run(row: dict) -> str:
    return "-" if row["minutes_per_run"] is None else f"{row['minutes_per_run']:.1f}"


def runs(row: dict) -> str:
    """``12``, or ``7 of 12`` for a row of a study still running."""
    planned = row.get("planned")
    return f"{row['runs']} of {planned}" if planned and planned != row["runs"] else str(row["runs"])
