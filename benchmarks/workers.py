"""`--workers N` in a client-bound setting: does a second client process buy throughput?

Simulated servers with zero model cost and fast steps (the client is the bottleneck), the same
problems and the same total number in flight, run as 1 and as 2 worker processes (each worker
gets its share of the concurrency). Each run is a real `tessy synthesize --workers W` against
fresh servers; reported: wall time, kept tokens per second, and the data (every id once).

    python -m benchmarks.workers [--problems 600] [--in-flight 128] [--mean-words 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.client_load import sim_replicas
from benchmarks.serving import ROOT, write_problems


def run(workers: int, args: argparse.Namespace, work: Path) -> dict:
    out = work / f"workers-{workers}.jsonl"
    for stale in out.parent.glob(out.name + "*"):
        if stale.is_file():
            stale.unlink()
    inputs = write_problems(work / "problems.jsonl", args.problems)
    with ExitStack() as stack:
        urls = {r: stack.enter_context(sim_replicas(r, 1, args.step, args.mean_words,
                                                    work / f"{r}.log"))
                for r in ("teacher", "student")}
        cmd = [sys.executable, "-m", "tessy", "synthesize", str(inputs), "-o", str(out), "-q",
               "--teacher", urls["teacher"][0], "--student", urls["student"][0],
               "--teacher-template", "qwen3", "--student-template", "qwen3",
               "--concurrency", str(args.in_flight // workers),
               "--max-thinking-tokens", "8192", "--max-answer-tokens", "16",
               "--workers", str(workers), "--mode", "stream"]
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - started
    records = [json.loads(line) for line in out.read_text().splitlines()]
    kept = sum(sum(r["tessy"]["tokens"].values()) for r in records)
    ids = [r["id"] for r in records]
    return {"workers": workers, "seconds": seconds, "kept": kept, "records": len(ids),
            "unique": len(set(ids))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=600)
    parser.add_argument("--in-flight", type=int, default=128)
    parser.add_argument("--mean-words", type=int, default=600)
    parser.add_argument("--step", type=float, default=0.002, help="Seconds per decode step.")
    args = parser.parse_args()
    work = ROOT / "out" / "bench" / "workers"
    work.mkdir(parents=True, exist_ok=True)
    rows = [run(w, args, work) for w in (1, 2)]
    base = rows[0]["kept"] / rows[0]["seconds"]
    print(f"### --workers in a client-bound setting: {args.problems} problems, {args.in_flight} "
          f"in flight in all, zero-cost servers stepping every {args.step * 1000:g} ms, stream "
          "mode, lexicon\n")
    print("| workers | wall s | kept tokens/s | vs 1 worker | records (unique) |")
    print("|---|---|---|---|---|")
    for r in rows:
        rate = r["kept"] / r["seconds"]
        print(f"| {r['workers']} | {r['seconds']:.1f} | {rate:,.0f} | {rate / base:.2f}x | "
              f"{r['records']} ({r['unique']}) |")


if __name__ == "__main__":
    main()
