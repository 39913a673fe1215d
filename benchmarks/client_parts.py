"""What the parts of a cooperative request cost the client alone (the reading of client_load).

    python -m benchmarks.client_parts [--pythonpath DIR]     # ~1 minute

1. **the watcher**: CPU per token of `TurnWatcher.feed`, replaying the turns of cooperative
   trajectories on the client_load benchmark's scripted text (64 problems, ~1000 words each,
   written in process first): each turn's text fed one token at a time to a watcher of its role
   until it decides, with the lexicon and with no predictor (what teacher-only pays);
2. **a connection**: CPU to connect to a local listener and drop the connection, to `127.0.0.1`
   and to `localhost` (a name: resolved on every connect unless the client keeps the address);
3. **a request** against the simulated server (`benchmarks.simserver`, zero cost): connect, POST
   a 12 KB prompt, read the first event, hang up; a bare asyncio protocol against tessy's
   `Transport.stream`, 64 at a time.

CPU is this process's (user + system, the listener's accept thread included in 2). On uvloop,
as tessy runs. `--pythonpath DIR` measures another checkout's tessy (its `src/`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def turns(problems: int, words: int) -> list[tuple[str, str, list[str]]]:
    """(role, thinking before the turn, the turn's tokens) of cooperative runs on scripted text."""
    from benchmarks.scripted import ScriptedModel
    from tessy.backends.base import BackendCounters, Delta
    from tessy.boundary import LexiconPredictor
    from tessy.config import SamplingConfig, SynthesisConfig
    from tessy.records import Problem
    from tessy.synthesis.cooperate import Cooperation
    from tessy.synthesis.roles import RoleRuntime
    from tessy.templates import qwen3

    class Scripted:  # the simulated server's model, in process
        tokenizer = None

        def __init__(self, role: str) -> None:
            self.name, self.model, self.counters = role, ScriptedModel(role, words), BackendCounters()

        async def generate(self, request):  # type: ignore[no-untyped-def]
            for i, token in enumerate(self.model.continuation(request.prompt)):
                if i == request.max_tokens:
                    yield Delta("", 0, "length")
                    return
                yield Delta(token, 1)
            yield Delta("", 0, "stop")

    roles = {r: RoleRuntime(r, Scripted(r), qwen3(), LexiconPredictor(r),  # type: ignore[arg-type]
                            SamplingConfig(temperature=0), asyncio.Semaphore(problems))
             for r in ("student", "teacher")}
    engine = Cooperation(roles, SynthesisConfig(max_thinking_tokens=4 * words))
    trajectories = await asyncio.gather(*(engine.run(Problem(f"p{i}", f"Problem {i}: climb."))
                                          for i in range(problems)))
    out = []
    for traj in trajectories:
        thinking = ""
        for segment in traj.segments:
            tokens = re.findall(r"\s*\S+", segment.text)
            out.append((segment.role, thinking, tokens + [" Next", " words", " here."]))
            thinking += segment.text
    return out


async def watcher_cost(work: list[tuple[str, str, list[str]]], lexicon: bool) -> float:
    """µs of CPU per token fed, over every turn three times."""
    from tessy.boundary import LexiconPredictor
    from tessy.boundary.cut import TurnWatcher

    predictors = {r: LexiconPredictor(r) if lexicon else None for r in ("student", "teacher")}
    fed, started = 0, cpu()
    for _ in range(3):
        for role, thinking, tokens in work:
            watcher = TurnWatcher(role, predictors[role], thinking, ("</think>",))
            for token in tokens:
                fed += 1
                if await watcher.feed(token, 1, False):
                    break
    return 1e6 * (cpu() - started) / fed


async def connect_cost(host: str, n: int = 3000) -> float:
    """µs of CPU per connect + abort to a local listener."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    loop = asyncio.get_running_loop()
    started = cpu()
    for _ in range(n):
        transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
        transport.abort()
    spent = cpu() - started
    listener.close()
    return 1e6 * spent / n


async def request_cost(url: str, bare: bool, n: int = 3000, at_once: int = 64) -> float:
    """µs of CPU per request that reads one event and hangs up."""
    import orjson

    from tessy.transport.client import Transport

    body = orjson.dumps({"model": "m", "prompt": "word " * 2500, "max_tokens": 1000,
                         "stream": True})
    host, port = url.split("//")[1].split("/")[0].split(":")
    head = b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" \
           b"Content-Length: %d\r\n\r\n" % (host.encode(), len(body))
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(at_once)
    transport = Transport([url], size=at_once, timeout=60)

    class FirstEvent(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done = done

        def connection_made(self, tr: asyncio.BaseTransport) -> None:
            self.tr = tr
            tr.write(head + body)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            if b"data: " in data and not self.done.done():
                self.tr.abort()  # type: ignore[attr-defined]
                self.done.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(None)

    async def one() -> None:
        async with gate:
            if bare:
                done = loop.create_future()
                await loop.create_connection(lambda: FirstEvent(done), host, int(port))
                await done
            else:
                stream = transport.stream(url, "/completions", body)
                async for _ in stream:
                    break
                await stream.aclose()

    await asyncio.gather(*(one() for _ in range(200)))  # warm up
    started = cpu()
    await asyncio.gather(*(one() for _ in range(n)))
    spent = cpu() - started
    await transport.aclose()
    return 1e6 * spent / n


async def measure(url: str) -> list[tuple[str, float]]:
    work = await turns(64, 1000)
    tokens = sum(len(t) for _, _, t in work)
    rows = [(f"watcher, lexicon: µs per token ({tokens:,} tokens of {len(work):,} turns x 3)",
             await watcher_cost(work, True)),
            ("watcher, no predictor (teacher-only): µs per token", await watcher_cost(work, False)),
            ("connect + drop, to 127.0.0.1: µs", await connect_cost("127.0.0.1")),
            ("connect + drop, to localhost: µs", await connect_cost("localhost")),
            ("request (connect, 12 KB POST, 1 event, hang up), bare asyncio protocol: µs",
             await request_cost(url, bare=True)),
            ("the same request through tessy's Transport.stream: µs",
             await request_cost(url, bare=False))]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pythonpath", help="Measure the tessy in this source dir instead.")
    parser.add_argument("--client", default="this checkout", help="The client, as the table names it.")
    args = parser.parse_args()
    if args.pythonpath:
        sys.path.insert(0, str(Path(args.pythonpath).resolve()))
    from tessy import aio

    cmd = [sys.executable, "-m", "benchmarks.simserver", "--role", "student", "--mean-words",
           "4000", "--max-batch", "100000", "--decode", "0.02", "--per-seq", "0", "--prefill", "0",
           "--overhead", "0", "--tokenize", "0"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                              text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]
        rows = aio.run(measure(url))
    finally:
        server.terminate()
        server.wait()
    print(f"### The parts of a cooperative request, alone ({args.client})\n")
    print("| part | client CPU |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value:.2f} |")


if __name__ == "__main__":
    main()
