"""A paper-shaped run: thousands of problems, hundreds in flight, several replicas per role.

4 teacher + 2 student simulated replicas (vLLM-like cost model, prefix caches that fill as
decode goes, one SSE event per step), 512 problems in flight, traces of a few thousand tokens.
Each variant is a real `tessy synthesize` process against fresh servers. Reported: wall per kept
token against teacher-only on the same replicas, client CPU per streamed token, requests per
switch, and the client's peak RSS, which must follow what is in flight, not how many problems
the run has (the stream variant runs at two problem counts to show it).

    python -m benchmarks.scale                 # 2000 problems (and 500 for the RSS check)
    python -m benchmarks.scale --problems 300 --in-flight 128   # a quicker look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from benchmarks.client_load import sim_replicas
from benchmarks.serving import ROOT, Run, role_metrics, run_client, write_problems

# A 8B-class model on one GPU per replica, slowed per sequence so that 6 replicas and the
# client share 2 CPU cores without the simulation itself falling behind.
COST = ["--decode", "0.010", "--per-seq", "0.0002", "--prefill", "0.00002", "--overhead", "0.004"]


def run_variant(label: str, extra: list[str], problems: int, args: argparse.Namespace,
                work: Path) -> tuple[Run, float]:
    """One variant on fresh replicas; (its figures, SSE events the servers streamed)."""
    inputs = write_problems(work / f"problems-{problems}.jsonl", problems)
    with ExitStack() as stack:
        urls = {role: stack.enter_context(sim_replicas(
            role, n, 0, args.mean_words, work / f"{role}.log", cost=COST))
            for role, n in (("teacher", args.teachers), ("student", args.students))}
        cli = [str(inputs), "--teacher", ",".join(urls["teacher"]),
               "--student", ",".join(urls["student"]), "--teacher-template", "qwen3",
               "--student-template", "qwen3", "--concurrency", str(args.in_flight),
               "--teacher-concurrency", str(args.in_flight),
               "--student-concurrency", str(args.in_flight),
               "--max-thinking-tokens", "16384", "--max-answer-tokens", "32", *extra]
        name = f"{label.split()[-1]}-{problems}"
        run = run_client(label, cli, work / f"{name}.jsonl", urls)
        events = sum(role_metrics(u).get("sim:streamed_events", 0) for u in urls.values())
    print(f"  {label} x {problems}: {run.seconds:.0f}s, {run.written} written", file=sys.stderr)
    return run, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=2000)
    parser.add_argument("--small", type=int, default=500, help="Problems of the RSS comparison.")
    parser.add_argument("--in-flight", type=int, default=512)
    parser.add_argument("--teachers", type=int, default=4)
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--mean-words", type=int, default=2000, help="Mean thinking length.")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "scale")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = [("teacher-only", *run_variant("teacher-only", ["--strategy", "teacher-only"],
                                          args.problems, args, args.out))]
    for n in (args.small, args.problems):
        rows.append(("tessy stream", *run_variant("tessy stream", ["--mode", "stream"], n, args,
                                                  args.out)))
    base = rows[0][1]
    lines = [f"### Paper-shaped run: {args.teachers} teacher + {args.students} student simulated "
             f"replicas, {args.in_flight} problems in flight, ~{args.mean_words} thinking "
             "tokens each", "",
             "| variant | problems | written | wall s | wall ms / kept tok | vs teacher-only | "
             "client CPU µs / streamed tok | requests / switch | prefix-cache hit | "
             "client peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, run, events in rows:
        wall = run.seconds / max(1, run.kept_total)
        requests = sum(run.requests.values())
        per_switch = f"{requests / run.switches:.3f}" if run.switches else "–"
        hit = f"{run.cached_tokens / run.prompt_tokens:.0%}" if run.cached_tokens else "–"
        lines.append(
            f"| {label} | {run.trajectories + run.failed} | {run.written} | {run.seconds:.0f} | "
            f"{1000 * wall:.3f} | {wall / (base.seconds / base.kept_total):.2f}x | "
            f"{1e6 * run.cpu / max(1, events):.1f} | {per_switch} | {hit} | {run.peak_mb:.0f} |")
    lines.append(f"\n({time.perf_counter() - started:.0f} s in all; client CPU per token counts "
                 "the whole process, start-up included, over the SSE events the servers sent)")
    (args.out / "runs.json").write_text(json.dumps([asdict(r) for _, r, _ in rows], indent=1))
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
