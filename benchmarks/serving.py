"""Serving benchmarks: tessy against plain teacher-only generation and the authors' lock-step
scheduling, on the same problems, models, servers and concurrency.

Every variant is a real `tessy synthesize` process (so wall time, CPU and peak memory are the
client's own), started against fresh servers (cold prefix caches). Figures come from the
records, `OUT.run.json` (the client's counters) and the servers' `/metrics` where they have it.

    python -m benchmarks.serving --setting sim     # simulated servers with a cost model
    python -m benchmarks.serving --setting local   # SmolLM2 in both roles, in-process (transformers)
    python -m benchmarks.serving --setting llama   # llama-servers, the embedded pair
    python -m benchmarks.serving --setting cpu     # client CPU per request as the trace grows

`make bench` runs them all (and the predictor cost benchmark); results go to out/bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import httpx

from tessy.io.run_files import RunFiles
from tessy.records import ROLES
from tessy.serving.llama_server import free_port

ROOT = Path(__file__).resolve().parent.parent

# (label, arguments of `tessy synthesize`): the comparison the issue asks for.
VARIANTS = [
    ("teacher-only (plain generation)", ["--strategy", "teacher-only"]),
    ("tessy stream", ["--mode", "stream"]),
    # A new teacher request after every student turn that kept nothing (before hold_teacher).
    ("tessy stream, no hold", ["--mode", "stream", "--no-hold-teacher"]),
    ("tessy step k=20", ["--mode", "step", "--step-tokens", "20"]),
    ("tessy step k=5/10", ["--mode", "step", "--step-tokens", "5/10"]),
    ("lock-step prototype k=5/10", ["--mode", "step", "--step-tokens", "5/10",
                                    "--scheduler", "lockstep"]),
]


@dataclass
class Run:
    """What one variant did, from the client's and the servers' point of view."""

    label: str
    seconds: float  # synthesis wall time (model loading excluded)
    cpu: float  # client process CPU seconds, user + sys
    peak_mb: float  # client peak resident memory
    kept: dict[str, int]  # tokens in the records per role, thinking + answer
    switches: int
    trajectories: int
    requests: dict[str, int]
    bytes_sent: int
    decoded: dict[str, int]  # tokens decoded per role: the server's count where it has one
    prompt_tokens: int
    cached_tokens: int | None  # None: the server does not report its prefix cache
    written: int
    failed: int
    server: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    def per_1k(self, value: float) -> float:
        return 1000 * value / max(1, self.kept_total)

    def discarded(self, role: str) -> float:
        """Share of the role's decoded tokens that were thrown away."""
        d = self.decoded[role]
        return (d - self.kept[role]) / d if d else 0.0


# ---------------------------------------------------------------- running a variant

def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server {url} did not start")


@contextmanager
def server(cmd: list[str], url: str, log: Path):
    """A server process for the duration of the block."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def role_servers(command, logs: Path):
    """One server per role on a free port for the block, started by `command(role, port)`;
    yields {role: …/v1 URL}."""
    ports = {r: free_port() for r in ROLES}
    urls = {r: f"http://127.0.0.1:{ports[r]}/v1" for r in ROLES}
    with ExitStack() as stack:
        for r in ROLES:
            stack.enter_context(server(command(r, ports[r]), urls[r], logs / f"{r}.log"))
        yield urls


def server_metrics(url: str) -> dict[str, float]:
    """Prometheus counters of a vLLM-style `/metrics` (summed over labels); {} if it has none."""
    root = url.removesuffix("/v1")
    try:
        response = httpx.get(f"{root}/metrics", timeout=5)
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:
        return {}
    out: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0].removesuffix("_total")
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


def role_metrics(urls: str | list[str]) -> dict[str, float]:
    """`server_metrics` summed over a role's replicas."""
    total: dict[str, float] = {}
    for url in [urls] if isinstance(urls, str) else urls:
        for k, v in server_metrics(url).items():
            total[k] = total.get(k, 0.0) + v
    return total


def run_client(label: str, args: list[str], out: Path,
               urls: dict[str, str] | dict[str, list[str]] | None) -> Run:
    """Run `tessy synthesize` as a child process and gather its figures (servers' counters
    summed over each role's replicas)."""
    for stale in out.parent.glob(out.name + "*"):
        stale.unlink()
    cmd = [sys.executable, "-m", "tessy", "synthesize", *args, "-o", str(out), "-q"]
    before = {r: role_metrics(u) for r, u in (urls or {}).items()}
    with open(out.with_suffix(".log"), "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{label}: tessy exited {code}; see {out.with_suffix('.log')}")
    after = {r: role_metrics(u) for r, u in (urls or {}).items()}
    summary = json.loads(RunFiles(out).run_record.read_text())
    records = [json.loads(line)["tessy"] for line in out.read_text().splitlines()]
    kept = {r: sum(t["tokens"][r] for t in records) for r in ROLES}
    for t in records:
        kept[t["answer"]["role"]] += t["answer"]["n_tokens"]
    decoded = {r: sum(t["generated_tokens"][r] for t in records) for r in ROLES}
    server = {r: {k: v - before[r].get(k, 0.0) for k, v in after[r].items()} for r in after}
    for role, m in server.items():
        if "vllm:generation_tokens" in m:
            decoded[role] = int(m["vllm:generation_tokens"])
    backends = summary["backends"]
    cached = sum(b["cached_prompt_tokens"] for b in backends.values())
    # In-process models always count their cache; a server may not report it at all.
    reported = urls is None or cached > 0 or any("vllm:prefix_cache_hits" in m
                                                 for m in server.values())
    return Run(
        label=label, seconds=summary["seconds"], cpu=usage.ru_utime + usage.ru_stime,
        peak_mb=usage.ru_maxrss / 1024, kept=kept,
        switches=sum(t["switches"] for t in records), trajectories=len(records),
        requests={r: backends[r]["requests"] for r in ROLES},
        bytes_sent=sum(b["bytes_sent"] for b in backends.values()), decoded=decoded,
        prompt_tokens=sum(b["prompt_tokens"] for b in backends.values()),
        cached_tokens=cached if reported else None, written=summary["written"],
        failed=summary["failed"], server=server,
    )


# ---------------------------------------------------------------- the three settings

def sim_server_cmd(role: str, port: int, mean_words: int, cost: tuple[str, ...] = ()) -> list[str]:
    """The simulated server of `role`; `cost` overrides its cost model (`--decode 0.001` ...)."""
    return [sys.executable, "-m", "benchmarks.simserver", "--role", role, "--port", str(port),
            "--mean-words", str(mean_words), *cost]


def problem_prompt(i: int) -> str:
    """The prompt of the benchmarks' problem `i` (`write_problems` writes them)."""
    return f"Problem {i}: count the climbs of a staircase of {10 + i} stairs."


def write_problems(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"p{i}", "prompt": problem_prompt(i)}) + "\n")
    return path


def bench_sim(work: Path, problems: int, concurrency: int, mean_words: int) -> list[Run]:
    """Setting (a): two simulated servers, fresh for every variant."""
    inputs = write_problems(work / "problems.jsonl", problems)
    runs = []
    for label, extra in VARIANTS:
        with role_servers(partial(sim_server_cmd, mean_words=mean_words), work) as urls:
            args = [str(inputs), "--teacher", urls["teacher"], "--student", urls["student"],
                    "--teacher-template", "qwen3", "--student-template", "qwen3",
                    "--concurrency", str(concurrency), "--max-thinking-tokens", "8192",
                    "--max-answer-tokens", "32", *extra]
            runs.append(run_client(label, args, work / f"{slug(label)}.jsonl", urls))
        print(f"  {label}: {runs[-1].seconds:.1f}s", file=sys.stderr)
    return runs


# Real models: SmolLM2-135M-Instruct (told to think in <think>) in both roles. The embedded
# teacher, gemma-3-270m base, closes its thinking at once under greedy decoding, which leaves
# teacher-only with nothing to compare against.
def real_model() -> str:
    from tessy.embedded import smollm2_gguf

    return str(smollm2_gguf())


REAL_ARGS = ["--teacher-template", "chat-think", "--student-template", "chat-think",
             "--max-answer-tokens", "24", "--temperature", "0"]


def bench_local(work: Path, problems: int, thinking: int) -> list[Run]:
    """Setting (b1): transformers in-process on the CPU."""
    runs = []
    for label, extra in VARIANTS:
        args = ["--limit", str(problems), "--teacher", real_model(), "--student", real_model(),
                "--max-thinking-tokens", str(thinking), *REAL_ARGS, *extra]
        runs.append(run_client(label, args, work / f"{slug(label)}.jsonl", None))
        print(f"  {label}: {runs[-1].seconds:.1f}s", file=sys.stderr)
    return runs


def llama_threads(every: bool) -> dict[str, int]:
    """Each role's server threads: tessy's rule for two managed servers on one machine (the
    teacher every core, the student a share by size), or every core each (`every`)."""
    from tessy.embedded import qwen_coder_gguf, smollm2_gguf
    from tessy.serving.llama_server import default_threads, shared_threads

    if every:
        return dict.fromkeys(ROLES, default_threads())
    return shared_threads({"teacher": qwen_coder_gguf(), "student": smollm2_gguf()})


def llama_server_cmd(role: str, port: int, threads: dict[str, int] | None = None) -> list[str]:
    """The embedded pair on llama.cpp's own server (`tessy setup` builds it): Qwen2.5-Coder-1.5B
    teaches, SmolLM2-135M learns; two slots each (tessy's default at 2 in flight), `threads` by
    role (default every core)."""
    from tessy.embedded import qwen_coder_gguf, smollm2_gguf
    from tessy.serving.llama_server import LlamaServer

    model = qwen_coder_gguf() if role == "teacher" else smollm2_gguf()
    server = LlamaServer(model, slots=2, context=2048, threads=(threads or {}).get(role))
    server.port = port
    return server.command()


LLAMA_ARGS = ["--teacher-template", "chat", "--student-template", "chat-think",
              "--answer-from", "thinking", "--answer-role", "teacher", "--max-answer-tokens", "64",
              "--temperature", "0"]


def bench_llama(work: Path, problems: int, thinking: int, concurrency: int,
                threads: dict[str, int]) -> list[Run]:
    """Setting (b2): llama-servers, one per role, fresh per variant (both run in every variant,
    so the teacher's server is the same in each)."""
    runs = []
    for label, extra in VARIANTS:
        with role_servers(partial(llama_server_cmd, threads=threads), work) as urls:
            args = ["--limit", str(problems), "--teacher", urls["teacher"], "--student",
                    urls["student"], "--max-thinking-tokens", str(thinking),
                    "--concurrency", str(concurrency), *LLAMA_ARGS, *extra]
            runs.append(run_client(label, args, work / f"{slug(label)}.jsonl", urls))
        print(f"  {label}: {runs[-1].seconds:.1f}s", file=sys.stderr)
    return runs


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.split(" (")[0]).strip("-")


# ---------------------------------------------------------------- printing

def table(runs: list[Run], title: str) -> str:
    """The comparison as a Markdown table, ratios against the first (teacher-only) row."""
    base = runs[0]
    stream = next((r for r in runs if r.label == "tessy stream"), None)
    lock = next((r for r in runs if r.label.startswith("lock-step")), None)
    lines = [f"### {title}", "",
             "| variant | wall s / 1k kept tok | vs teacher-only | requests / 1k kept | "
             "requests / switch | KB sent / kept tok | teacher tokens discarded | student tokens "
             "discarded | prefix-cache hit | client CPU s / 1k kept | client peak MB | written |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if not r.kept_total:
            lines.append(f"| {r.label} | nothing written ({r.failed} failed) |" + " |" * 10)
            continue
        wall = r.per_1k(r.seconds)
        req = sum(r.requests.values())
        hit = "not reported" if r.cached_tokens is None else f"{r.cached_tokens / r.prompt_tokens:.0%}"
        per_switch = f"{req / r.switches:.2f}" if r.switches else "–"
        student = f"{r.discarded('student'):.1%}" if r.decoded["student"] else "–"
        lines.append(
            f"| {r.label} | {wall:.2f} | {wall / base.per_1k(base.seconds):.2f}x | "
            f"{r.per_1k(req):.0f} | {per_switch} | {r.bytes_sent / 1024 / r.kept_total:.2f} | "
            f"{r.discarded('teacher'):.1%} | {student} | {hit} | {r.per_1k(r.cpu):.2f} | "
            f"{r.peak_mb:.0f} | {r.written}/{r.written + r.failed} |")
    if stream and lock:
        s, t, lk = (x.per_1k(x.seconds) for x in (stream, base, lock))
        turns = stream.switches + stream.trajectories
        thinking_requests = sum(stream.requests.values()) - stream.trajectories
        lines += ["", f"Ratios: stream / teacher-only wall = **{s / t:.2f}**; stream / lock-step "
                  f"prototype wall = **{s / lk:.2f}** (lock-step is {lk / s:.1f}x slower); stream "
                  f"requests = {sum(stream.requests.values())} for {stream.switches} switches "
                  f"({sum(stream.requests.values()) / stream.switches:.3f} per switch; thinking "
                  f"requests per turn = {thinking_requests / turns:.3f}); {stream.trajectories} "
                  f"trajectories, {stream.kept_total} kept tokens."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=["sim", "local", "llama", "cpu", "all"],
                        default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench")
    parser.add_argument("--problems", type=int, default=32, help="sim: problems")
    parser.add_argument("--concurrency", type=int, default=16, help="sim: problems in flight")
    parser.add_argument("--mean-words", type=int, default=1000, help="sim: mean thinking words")
    parser.add_argument("--real-problems", type=int, default=6, help="local: problems")
    parser.add_argument("--real-thinking", type=int, default=96,
                        help="local: thinking token budget")
    parser.add_argument("--llama-problems", type=int, default=8, help="llama: demo problems")
    parser.add_argument("--llama-thinking", type=int, default=384,
                        help="llama: thinking token budget (the embedded default's)")
    parser.add_argument("--llama-threads", choices=["shared", "every"], default="shared",
                        help="llama: tessy's rule (the teacher's server every core, the "
                             "student's a share by size) or every core each")
    parser.add_argument("--variants", default="all",
                        help=f"comma-separated, of {', '.join(slug(v) for v, _ in VARIANTS)} "
                             "(teacher-only always runs: the ratios' base)")
    args = parser.parse_args()
    if args.variants != "all":
        chosen = {slug(VARIANTS[0][0]), *args.variants.split(",")}
        if unknown := chosen - {slug(v) for v, _ in VARIANTS}:
            parser.error(f"--variants: unknown {', '.join(sorted(unknown))}")
        VARIANTS[:] = [v for v in VARIANTS if slug(v[0]) in chosen]
    settings = ["sim", "local", "llama", "cpu"] if args.setting == "all" else [args.setting]
    report = []
    for setting in settings:
        work = args.out / setting
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        print(f"[{setting}]", file=sys.stderr)
        if setting == "sim":
            runs = bench_sim(work, args.problems, args.concurrency, args.mean_words)
            title = (f"Simulated servers: {args.problems} problems, {args.concurrency} in flight, "
                     f"~{args.mean_words} thinking tokens each, lexicon predictor")
        elif setting == "local":
            runs = bench_local(work, args.real_problems, args.real_thinking)
            title = (f"transformers in-process (SmolLM2-135M-Instruct in both roles, CPU, greedy): "
                     f"{args.real_problems} problems, thinking budget {args.real_thinking}")
        elif setting == "llama":
            threads = llama_threads(args.llama_threads == "every")
            runs = bench_llama(work, args.llama_problems, args.llama_thinking, 2, threads)
            title = (f"llama-servers (llama.cpp; teacher Qwen2.5-Coder-1.5B-Instruct Q4_K_M, "
                     f"student SmolLM2-135M-Instruct Q4_1; 2 slots each, threads "
                     f"{threads['teacher']} and {threads['student']}, greedy): "
                     f"{args.llama_problems} demo problems, thinking budget {args.llama_thinking}, "
                     "2 in flight")
        else:
            from benchmarks.client_cpu import profile

            report.append(profile(work))
            continue
        text = table(runs, title)
        (work / "runs.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
        report.append(text + f"\n\n({time.perf_counter() - started:.0f} s for this setting)")
        print(report[-1] + "\n", flush=True)
    (args.out / "serving.md").write_text("\n\n".join(report) + "\n")


if __name__ == "__main__":
    main()
