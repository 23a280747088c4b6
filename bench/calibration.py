"""Is the report's inference calibrated at the sizes studies run? Simulated studies with a known
truth (endopat.report.calibration) through the report's own code path (report.compare), one line
per design and variance pattern: the false-positive rate of "resolved" under no difference, the
coverage of the true difference and the power against a true difference of 0.04 Dice.

    python bench/calibration.py                 # the report's inference, 1000 null + 1000 true studies a row
    python bench/calibration.py --old           # also the hierarchical bootstrap's percentile interval
    python bench/calibration.py --studies 200   # quicker
    python bench/calibration.py --across        # also two studies of one split side by side:
                                                # (A PAT - A baseline) - (B PAT - B baseline)

Bounds (issue 30): false-positive rate <= 0.06 and coverage >= 0.93 at nominal 95 %.
"""

from __future__ import annotations

import argparse
import time

from endopat.report.calibration import (DESIGNS, PATTERNS, across_inference, bootstrap_inference, calibrate,
                                        report_inference, study, two_protocols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--old", action="store_true", help="also the bootstrap percentile interval (slow)")
    ap.add_argument("--across", action="store_true", help="also the difference of a method's difference between "
                    "two studies of the same split (endopat report A --against B)")
    args = ap.parse_args()
    # (name, inference, simulation, held to the bounds)
    runs = [("report (t, fewest run-level df)", report_inference, study, True)]
    if args.old:
        runs.append(("old: hierarchical bootstrap, percentile", bootstrap_inference(1000), study, False))
    if args.across:
        runs.append(("two studies side by side, (A PAT - A base) - (B PAT - B base)", across_inference,
                     two_protocols, True))
    bad = 0
    for name, infer, simulate, checked in runs:
        print(f"# {name}, {args.studies} null + {args.studies} non-null studies per row")
        t = time.perf_counter()
        for design in DESIGNS:
            for pattern in PATTERNS:
                row = calibrate(infer, design, pattern, args.studies, simulate=simulate)
                ok = row.false_positive <= 0.06 and row.coverage >= 0.93
                bad += checked and not ok
                print(row.line() + ("" if ok else "   <- outside the bounds"), flush=True)
        print(f"({time.perf_counter() - t:.0f} s)\n")
    print("every row of the report's inferences within the bounds" if not bad else f"{bad} rows outside the bounds")


if __name__ == "__main__":
    main()
