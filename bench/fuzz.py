"""The fuzz tests of every reader (tests/test_fuzz_readers.py) with many more cases: each reader
fed N mutated files (default 5,000); prints per reader how many read, how many ended in the
one-line error, and the wall time. Any other exception fails the run with the case named.

    python bench/fuzz.py            # 5,000 cases per reader
    python bench/fuzz.py --cases 1000
    python bench/fuzz.py --seed 1   # other mutations than the test suite's (seed 0)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0, help="the mutations' random seed")
    args = ap.parse_args()
    t = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(HERE.parent / "tests" / "test_fuzz_readers.py"), "--durations=0"],
                           env={**os.environ, "ENDOPAT_FUZZ_CASES": str(args.cases), "ENDOPAT_FUZZ_SEED": str(args.seed)})
    print(f"{args.cases} cases per reader, seed {args.seed}: {'no exception but the one-line error' if code == 0 else 'FAILED'} "
          f"({time.perf_counter() - t:.0f} s)")
    sys.exit(code)


if __name__ == "__main__":
    main()
