"""Client CPU per streamed token under load: can one tessy process keep a vLLM cluster busy?

Many concurrent streams against simulated servers with zero model cost that pace tokens like
decode steps: every `--step` seconds each running request gets one token, sent as one SSE event
in vLLM's chunk layout, so a socket read carries about one event (a server that bursts lets
events coalesce and flatters the client). The client is a real `tessy synthesize` process; after
a warm-up, its CPU time (from /proc) over a window is divided by the events the servers streamed
in that window. `--profile` records the window with py-spy and prints where the time goes.
A third mode, teacher-only asking 32 tokens per request, makes about as many requests as the
cooperative one on kept-alive connections: what a request costs without a cut or a predictor.
`--floor` adds the request patterns in a bare asyncio reader with no tessy code
(`benchmarks/floor_client.py`): what the cooperative pattern costs any client, and what its
turns would cost on kept connections.

    python -m benchmarks.client_load --streams 256 --step 0.02 --seconds 30 [--profile] [--runs 2]

`--pythonpath DIR` runs another checkout's tessy (`DIR` = its `src/`), `--client` names the
client in the table's first column; `--baseline DIR` measures another checkout's tessy too, each
run right after this one's, for a before/after table; `--runs N` measures each mode N times,
interleaved, a row each (this machine's noise is +-10-20%), the profile taken in the first.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.serving import ROOT, server_metrics, write_problems

MODES = [("teacher-only", ["--strategy", "teacher-only"]),
         ("tessy stream (lexicon)", ["--mode", "stream"]),
         # The cost of a request alone: teacher-only asking 32 tokens at a time, so it makes as
         # many requests as cooperation does, on kept-alive connections, with no predictor.
         ("32-token requests, teacher-only", ["--strategy", "teacher-only", "--turn-tokens", "32"])]
# `--floor`: the two request patterns in a bare asyncio reader (benchmarks/floor_client.py), no
# tessy: what the pattern alone costs a client.
FLOOR = [("bare reader, teacher-only", "teacher-only"),
         ("bare reader, a connection per turn", "per-turn"),
         ("bare reader, the same turns on kept connections", "per-turn-kept")]
FLOOR_PATTERN = dict(FLOOR)  # label -> floor_client's pattern


@contextmanager
def sim_replicas(role: str, n: int, step: float, mean_words: int, log: Path,
                 cost: list[str] | None = None):
    """`n` replicas of a simulated server in one process; yields their URLs. The model costs
    nothing but the step (`step` s per token) unless `cost` gives its options."""
    zero = ["--decode", str(step), "--per-seq", "0", "--prefill", "0", "--overhead", "0",
            "--tokenize", "0"]
    cmd = [sys.executable, "-m", "benchmarks.simserver", "--role", role, "--replicas", str(n),
           "--mean-words", str(mean_words), "--max-batch", "100000", *(cost or zero)]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, cwd=ROOT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"simulated {role} server did not start; see {log}")
        yield line.split()[1:]
    finally:
        proc.terminate()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def streamed(urls: list[str]) -> tuple[float, float, float]:
    """(SSE events streamed, requests received, requests running) summed over the servers."""
    metrics = [server_metrics(u) for u in urls]
    return tuple(sum(m.get(k, 0) for m in metrics)  # type: ignore[return-value]
                 for k in ("sim:streamed_events", "sim:requests", "vllm:num_requests_running"))


def measure(label: str, extra: list[str] | str, args: argparse.Namespace, work: Path,
            profile: bool, client: str, pythonpath: str | None) -> dict:
    """One client run: CPU per event over the window after the warm-up (`pythonpath`: the
    tessy to run, None: this checkout's)."""
    problems = write_problems(work / "problems.jsonl", args.streams * 4)
    name = f"floor-{FLOOR_PATTERN[label]}" if label in FLOOR_PATTERN else label.split()[0]
    out = work / f"{name}.jsonl"
    for stale in out.parent.glob(out.name + "*"):
        stale.unlink()
    with ExitStack() as stack:
        urls = {r: stack.enter_context(sim_replicas(r, 1, args.step, args.mean_words,
                                                    work / f"{r}.log"))
                for r in ("teacher", "student")}
        every = urls["teacher"] + urls["student"]
        if label in FLOOR_PATTERN:
            cmd = [sys.executable, "-m", "benchmarks.floor_client", FLOOR_PATTERN[label],
                   urls["teacher"][0], urls["student"][0], "--streams", str(args.streams),
                   "--mean-words", str(args.mean_words)]
        else:
            cmd = [sys.executable, "-m", "tessy", "synthesize", str(problems), "-o", str(out),
                   "-q", "--teacher", ",".join(urls["teacher"]),
                   "--student", ",".join(urls["student"]),
                   "--teacher-template", "qwen3", "--student-template", "qwen3",
                   "--concurrency", str(args.streams), "--teacher-concurrency", str(args.streams),
                   "--student-concurrency", str(args.streams), "--max-thinking-tokens", "30000",
                   "--max-answer-tokens", "16", *extra]
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([str(Path(pythonpath).resolve()), str(ROOT)])
        with open(work / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            time.sleep(args.warmup)
            if proc.poll() is not None:
                raise RuntimeError(f"{label}: the client exited early; see {log.name}")
            profiler = None
            if profile:
                spy = str(Path(sys.executable).with_name("py-spy"))
                profiler = subprocess.Popen(
                    [spy, "record", "--nonblocking", "--format", "raw", "-r", "200",
                     "-d", str(int(args.seconds)), "-p", str(proc.pid),
                     "-o", str(work / f"{name}.profile")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu0, (events0, requests0, _), t0 = cpu_seconds(proc.pid), streamed(every), time.monotonic()
            time.sleep(args.seconds)
            cpu1, (events1, requests1, running), t1 = (cpu_seconds(proc.pid), streamed(every),
                                                       time.monotonic())
            if profiler:
                profiler.wait()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    events = events1 - events0
    return {"label": label, "client": client, "events": events, "events_per_s": events / (t1 - t0),
            "requests_per_s": (requests1 - requests0) / (t1 - t0),
            "running": running, "cpu": cpu1 - cpu0, "us_per_event": 1e6 * (cpu1 - cpu0) / max(1, events),
            "profile": work / f"{name}.profile" if profile else None}


def by_module(profile: Path) -> list[tuple[float, str]]:
    """(self %, module) of a py-spy raw profile: where the CPU goes, by source file."""
    own: collections.Counter[str] = collections.Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            leaf = stack.split(";")[-1].split(" (")[-1].split(":")[0]
            own[leaf.rsplit("/", 1)[-1]] += int(count)
    total = sum(own.values()) or 1
    return [(100 * c / total, module) for module, c in own.most_common(12)]


def top_functions(profile: Path, n: int = 18) -> list[tuple[float, float, str]]:
    """(self %, total %, function) of the busiest functions in a py-spy raw profile."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        samples += k
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";")]
        own[frames[-1]] += k
        for frame in set(frames):
            total[frame] += k
    return [(100 * own[f] / samples, 100 * total[f] / samples, f) for f, _ in own.most_common(n)]


def ratio(rows: list[dict]) -> None:
    """Cooperative over teacher-only client CPU per event, in this run (the issue's measure:
    absolute µs move with the machine's load, the ratio much less); the same for the bare
    reader's two patterns when measured (`--floor`)."""
    mean = {}
    for label, _ in MODES + FLOOR:
        got = [r["us_per_event"] for r in rows if r["label"] == label]
        if got:
            mean[label] = sum(got) / len(got)
    (base_label, _), (coop_label, _), (requests_label, _) = MODES
    (bare_label, _), (bare_turns, _), (bare_kept, _) = FLOOR
    pairs = [("Cooperative / teacher-only", base_label, coop_label),
             ("Bare reader, a connection per turn / teacher-only", bare_label, bare_turns),
             ("Bare reader, the same turns on kept connections / teacher-only", bare_label, bare_kept)]
    for name, base_label_, label in pairs:
        if base_label_ in mean and label in mean:
            base, coop = mean[base_label_], mean[label]
            print(f"\n{name} (mean µs per event over the runs): "
                  f"{coop:.1f} / {base:.1f} = **{coop / base:.2f}x**")
    for _, base_label_, label in [("", base_label, requests_label), *pairs]:
        if base_label_ in mean and label in mean:  # what a request adds, from the event rates
            got = [r for r in rows if r["label"] == label]
            per_s = sum(r["events_per_s"] for r in got) / sum(r["requests_per_s"] for r in got)
            print(f"\n{label}: {(mean[label] - mean[base_label_]) * per_s:.0f} µs of client CPU "
                  f"per request more than {base_label_} ({per_s:.0f} events per request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--step", type=float, default=0.02, help="Seconds per decode step.")
    parser.add_argument("--mean-words", type=int, default=4000, help="Mean thinking length.")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="The measured window.")
    parser.add_argument("--profile", action="store_true", help="py-spy the measured window.")
    parser.add_argument("--pythonpath", help="Measure the tessy in this source dir instead.")
    parser.add_argument("--client", default="this checkout", help="The client, as the table names it.")
    parser.add_argument("--baseline", help="Also measure the tessy in this source dir, each run "
                        "right after this one's (a before/after table).")
    parser.add_argument("--baseline-name", default="before", help="The baseline, as named.")
    parser.add_argument("--runs", type=int, default=1, help="Measure each mode this many times.")
    parser.add_argument("--modes", default="all", help="Comma-separated labels' first words.")
    parser.add_argument("--floor", action="store_true",
                        help="Also run both request patterns in a bare asyncio reader.")
    parser.add_argument("--out", default="out/bench/client_load")
    args = parser.parse_args()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    modes: list[tuple[str, list[str] | str]] = [
        m for m in MODES if args.modes == "all" or m[0].split()[0] in args.modes.split(",")]
    modes += FLOOR if args.floor else []
    clients = [(args.client, args.pythonpath)]
    clients += [(args.baseline_name, args.baseline)] if args.baseline else []
    # Runs interleave (every mode and client once, then again): the machine's load drifts over
    # minutes. The bare reader is no tessy: measured once per run.
    rows = [measure(label, extra, args, work, args.profile and run == 0 and i == 0, client,
                    pythonpath) | {"run": run + 1}
            for run in range(args.runs) for label, extra in modes
            for i, (client, pythonpath) in enumerate(clients)
            if i == 0 or label not in FLOOR_PATTERN]
    rows.sort(key=lambda r: ([c for c, _ in clients].index(r["client"]),
                             [label for label, _ in modes].index(r["label"])))
    print(f"### Client CPU per streamed token: {args.streams} streams, one SSE event per "
          f"{args.step * 1000:.0f} ms step each\n")
    print("| client | mode | run | streams running | events/s | requests/s | client CPU | "
          "µs per event |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        client = r["client"] if r["label"] not in FLOOR_PATTERN else "bare asyncio"
        print(f"| {client} | {r['label']} | {r['run']} | {r['running']:.0f} | "
              f"{r['events_per_s']:,.0f} | "
              f"{r['requests_per_s']:,.0f} | "
              f"{100 * r['cpu'] / args.seconds:.0f}% of a core | {r['us_per_event']:.1f} |")
    for client, _ in clients:
        print(f"\n{client}:")
        ratio([r for r in rows if r["client"] == client and r["label"] not in FLOOR_PATTERN])
    if args.floor:
        print("\nbare asyncio reader:")
        ratio([r for r in rows if r["label"] in FLOOR_PATTERN])
    for r in rows:
        if r["profile"] and Path(r["profile"]).exists():
            print(f"\n#### Where the client's time goes: {r['label']} (py-spy, self % / total %)\n")
            print("| self % | total % | function |\n|---|---|---|")
            for own, total, name in top_functions(Path(r["profile"])):
                print(f"| {own:.1f} | {total:.1f} | `{name}` |")
            print("\nBy source file (self %; `runners.py` is the event loop's C code under "
                  "`Runner.run`: socket reads, epoll, task wake-ups):\n")
            print("| self % | file |\n|---|---|")
            for own, module in by_module(Path(r["profile"])):
                print(f"| {own:.1f} | `{module}` |")


if __name__ == "__main__":
    main()
