"""Client CPU per request as the trace grows: does tessy do more work per request on a long trace?

One problem at a time (so the CPU between two request ends belongs to one request), long
scripted traces, simulated servers that decode fast (the client is what is measured). Each
request's window runs from the end of the previous request to the end of this one: building the
prompt, sending it, reading the stream, the watcher and the predictor.

    python -m benchmarks.serving --setting cpu
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

from benchmarks.serving import role_servers, sim_server_cmd
from tessy.config import run_config_from_dict
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.roles import open_roles

MODES = [("teacher-only", {"strategy": "teacher-only"}), ("tessy stream", {"mode": "stream"}),
         ("tessy step k=20", {"mode": "step"})]
BUCKETS = [(0, 2000), (2000, 4000), (4000, 8000), (8000, 16000)]  # trace words before a request


class Metered:
    """A backend whose requests are timed in client CPU seconds."""

    def __init__(self, inner, samples: list, clock: dict) -> None:
        self.inner, self.samples, self.clock = inner, samples, clock

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def generate(self, request):
        tokens = 0
        try:
            async for delta in self.inner.generate(request):
                tokens += delta.n_tokens
                yield delta
        finally:
            cpu = time.process_time() - self.clock["last"]
            self.samples.append((request.prompt, tokens, cpu))
            self.clock["last"] = time.process_time()


async def measure(urls: dict[str, str], synthesis: dict, problems: list[Problem]) -> list:
    config = run_config_from_dict({
        "teacher": {"backend": "openai_http", "base_urls": [urls["teacher"]], "template": "qwen3"},
        "student": {"backend": "openai_http", "base_urls": [urls["student"]], "template": "qwen3"},
        "synthesis": {"max_thinking_tokens": 16384, "max_answer_tokens": 16, "concurrency": 1,
                      **synthesis},
    })
    samples: list = []
    clock = {"last": time.process_time()}
    async with open_roles(config) as roles:
        for rt in roles.values():
            rt.backend = Metered(rt.backend, samples, clock)
        engine = Cooperation(roles, config.synthesis)
        for problem in problems:
            await engine.run(problem)
    return [(len(prompt.rsplit("<think>", 1)[-1].split()), tokens, cpu)
            for prompt, tokens, cpu in samples]


def profile(work: Path, mean_words: int = 10000) -> str:
    """Run the modes and return a Markdown table of CPU per request by trace length."""
    problems = [Problem(f"cpu{i}", f"Problem {i}: count the climbs of a long staircase.")
                for i in range(2)]
    fast = ("--decode", "0.0005", "--per-seq", "0", "--prefill", "0", "--overhead", "0.0005")
    rows = []
    for label, synthesis in MODES:
        command = partial(sim_server_cmd, mean_words=mean_words, cost=fast)
        with role_servers(command, work) as urls:
            samples = asyncio.run(measure(urls, synthesis, problems))
        cells = []
        for lo, hi in BUCKETS:
            got = [(t, c) for n, t, c in samples if lo <= n < hi]
            if not got:
                cells.append("–")
                continue
            per_request = sum(c for _, c in got) / len(got)
            per_token = sum(c for _, c in got) / max(1, sum(t for t, _ in got))
            cells.append(f"{per_request * 1e3:.2f} ms / {per_token * 1e6:.0f} µs")
        rows.append(f"| {label} | {len(samples)} | " + " | ".join(cells) + " |")
    head = " | ".join(f"{lo // 1000}k–{hi // 1000}k" for lo, hi in BUCKETS)
    return "\n".join([
        "### Client CPU per request (and per received token) by trace length in tokens",
        "", f"2 problems one at a time, ~{mean_words} thinking tokens each, simulated servers "
        "decoding at 0.5 ms/token.", "",
        f"| mode | requests | {head} |", "|---|---|" + "---|" * len(BUCKETS), *rows])
