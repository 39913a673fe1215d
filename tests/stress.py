"""Run the test suite several times while every core is kept busy (`make test-stress`).

A test that waits on wall-clock delays instead of events passes on an idle machine and fails
on a busy one; this makes the machine busy on purpose. Usage:
`python -m tests.stress --runs 3 -- <pytest arguments>`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def burn() -> None:
    """Spin one core until killed."""
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burners)]
    for p in burners:
        p.start()
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            code = subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])
            print(f"stress run {run}/{args.runs} with {args.burners} burners: "
                  f"{'passed' if code == 0 else f'FAILED ({code})'} "
                  f"in {time.monotonic() - started:.0f}s", flush=True)
            if code:
                return code
    finally:
        for p in burners:
            p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
