"""The simulated server of the benchmarks: its cost model must behave like a batching engine."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import aclosing
from functools import partial

import pytest
from benchmarks.serving import ROOT, role_servers, server_metrics, sim_server_cmd, write_problems
from benchmarks.simserver import CostModel, serve

from tessy.backends.base import GenerationRequest
from tessy.backends.openai_http import OpenAIHTTPBackend
from tessy.cli import main
from tessy.config import RoleConfig
from tessy.templates import qwen3

FAST = CostModel(overhead=0.0005, decode=0.002, per_seq=0.0, prefill=0.0)
PROMPT = qwen3().thinking_prompt("Problem 1: count the climbs.", "")


@pytest.fixture
async def sim():
    runner, url = await serve("teacher", FAST, mean_words=400)
    backend = OpenAIHTTPBackend(RoleConfig(role="teacher", base_urls=[url]))
    await backend.start()
    yield backend, url
    await backend.close()
    await runner.cleanup()


async def complete(backend, prompt: str, max_tokens: int, read: int | None = None):
    deltas = []
    async with aclosing(backend.generate(GenerationRequest(prompt, max_tokens))) as stream:
        async for delta in stream:
            deltas.append(delta)
            if read is not None and len(deltas) >= read:
                break
    return deltas


async def test_prefix_cache_serves_what_an_earlier_request_computed(sim):
    backend, url = sim
    first = await complete(backend, PROMPT, 40)
    text = "".join(d.text for d in first)
    second = await complete(backend, PROMPT + text, 5)
    words = len((PROMPT + text).split())
    usage = second[-1]
    assert usage.prompt_tokens == words
    assert usage.cached_tokens == (words - 1) // 16 * 16  # whole blocks, never the last token
    m = await asyncio.to_thread(server_metrics, url)
    assert m["vllm:prefix_cache_hits"] == backend.counters.cached_prompt_tokens == usage.cached_tokens
    assert m["vllm:prompt_tokens"] == backend.counters.prompt_tokens


async def test_blocks_are_cached_as_decode_fills_them_while_the_request_still_runs(sim):
    backend, url = sim
    stream = backend.generate(GenerationRequest(PROMPT, 300))
    text = ""
    async with aclosing(stream):
        async for delta in stream:
            text += delta.text
            if len(text.split()) >= 40:
                break
        # The first request is still open (decoding) while its continuation is asked for: the
        # blocks its decode filled are cached already, as in vLLM v1.
        second = await complete(backend, PROMPT + text, 3)
    words = len((PROMPT + text).split())
    assert second[-1].cached_tokens == (words - 1) // 16 * 16


async def test_a_closed_stream_stops_decoding(sim):
    backend, url = sim
    got = await complete(backend, PROMPT, 300, read=5)
    m = await asyncio.to_thread(server_metrics, url)
    while not m.get("sim:aborted"):  # the server notices the hang-up at its next step
        await asyncio.sleep(0.01)
        m = await asyncio.to_thread(server_metrics, url)
    assert m["sim:aborted"] == 1
    assert len(got) <= m["vllm:generation_tokens"] <= len(got) + 2


async def test_concurrent_requests_share_engine_steps(sim):
    backend, url = sim
    prompts = [qwen3().thinking_prompt(f"Problem {i}.", "") for i in range(4)]
    await asyncio.gather(*(complete(backend, p, 30) for p in prompts))
    m = await asyncio.to_thread(server_metrics, url)
    assert m["vllm:generation_tokens"] == 4 * 30
    assert m["sim:steps"] < 2 * 30  # batched, not 4 x 30 steps


def test_every_scheduler_writes_the_same_data_over_http(tmp_path, monkeypatch):
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Problem {i}."}) + "\n"
                                for i in range(3)))
    fast = ("--decode", "0.001", "--per-seq", "0", "--prefill", "0", "--overhead", "0.0005")
    monkeypatch.setattr(sys, "argv", ["tessy"])
    outputs = {}
    with role_servers(partial(sim_server_cmd, mean_words=150, cost=fast), tmp_path) as urls:
        for name, extra in [("stream", []), ("step", ["--mode", "step", "--step-tokens", "5/10"]),
                            ("lockstep", ["--mode", "step", "--step-tokens", "5/10",
                                          "--scheduler", "lockstep"])]:
            out = tmp_path / f"{name}.jsonl"
            code = main(["synthesize", str(problems), "--teacher", urls["teacher"], "--student",
                         urls["student"], "--teacher-template", "qwen3", "--student-template",
                         "qwen3", "-o", str(out), "-q", *extra])
            assert code == 0
            outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
            run = json.loads(out.with_name(out.name + ".run.json").read_text())
            sent = sum(b["requests"] for b in run["backends"].values())
            assert sent == sum(sum(r["tessy"]["requests"].values()) for r in outputs[name])
    segments = {k: sorted((r["id"], json.dumps(r["tessy"]["segments"])) for r in v)
                for k, v in outputs.items()}
    assert segments["stream"] == segments["step"] == segments["lockstep"]
    assert all(r["tessy"]["switches"] >= 4 for r in outputs["stream"])


def test_the_bare_reader_makes_the_requests_tessy_makes(tmp_path, monkeypatch):
    # benchmarks/floor_client.py is client_load's floor: the same requests without tessy.
    problems = write_problems(tmp_path / "p.jsonl", 2)
    fast = ("--decode", "0.001", "--per-seq", "0", "--prefill", "0", "--overhead", "0.0005")
    monkeypatch.setattr(sys, "argv", ["tessy"])
    with role_servers(partial(sim_server_cmd, mean_words=60, cost=fast), tmp_path) as urls:
        def requests() -> float:
            return sum(server_metrics(u)["sim:requests"] for u in urls.values())

        out = tmp_path / "out.jsonl"
        assert main(["synthesize", str(problems), "--teacher", urls["teacher"], "--student",
                     urls["student"], "--teacher-template", "qwen3", "--student-template",
                     "qwen3", "-o", str(out), "-q"]) == 0
        records = [json.loads(line) for line in out.read_text().splitlines()]
        thinking = requests() - len(records)  # every record also asked for its answer
        assert thinking >= 4 * len(records)  # turns, not one request per trace
        for pattern in ("per-turn", "per-turn-kept"):
            before = requests()
            subprocess.run([sys.executable, "-m", "benchmarks.floor_client", pattern,
                            urls["teacher"], urls["student"], "--problems", "2", "--streams", "2",
                            "--mean-words", "60"], check=True, cwd=ROOT, timeout=120)
            assert requests() - before == thinking, pattern
