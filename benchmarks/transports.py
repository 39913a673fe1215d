"""Which HTTP transport should read the streams? Client CPU per SSE event, by transport and loop.

256 concurrent streamed completions against a zero-cost simulated server that sends one event
per 20 ms step to every stream (a socket read carries about one event, as under a real decode
loop). Each variant runs in its own client process, requests back to back over a keep-alive
pool; CPU time over a window after a warm-up is divided by the events read in it. Every variant
parses each event's JSON with orjson and takes its text, as tessy does.

    python -m benchmarks.transports [--streams 256] [--seconds 15]

Variants: httpx (`aiter_bytes` into tessy's SSE parser, tessy's path through a proxy), aiohttp
(`iter_any` with the events split by hand), and tessy's own transport (`tessy.transport`), each
on asyncio and uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from importlib.metadata import version

import orjson

from benchmarks.client_load import sim_replicas
from benchmarks.serving import ROOT

VARIANTS = ["httpx", "aiohttp", "tessy"]
NAMES = {"httpx": "httpx {httpx} (`aiter_bytes` into tessy's SSE parser; tessy's path through a proxy)",
         "aiohttp": "aiohttp {aiohttp} (`iter_any`, events split by hand)",
         "tessy": "tessy's transport (`tessy/transport/`: asyncio `BufferedProtocol`, one reused "
                  "read buffer, chunked framing and SSE split in `buffer_updated`)"}
LOOPS = ["asyncio", "uvloop"]


async def read_httpx_or_tessy(url: str, body: bytes, fast: bool, counts: dict) -> None:
    from tessy.openai_api import OpenAIClient
    from tessy.transport import Transport

    async with OpenAIClient([url], concurrency=counts["streams"]) as client:
        if not fast:  # tessy's path through a proxy
            await client.transport.aclose()
            client.transport = Transport([url], size=counts["streams"] + 4, timeout=300.0, fast=False)

        async def one() -> None:
            while True:
                async for batch in client.stream_completion(url, body):
                    for chunk in batch:
                        if chunk["choices"]:
                            counts["chars"] += len(chunk["choices"][0]["text"])
                    counts["events"] += len(batch)

        await asyncio.gather(*(one() for _ in range(counts["streams"])))


async def read_aiohttp(url: str, body: bytes, counts: dict) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=counts["streams"] + 4)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            while True:
                async with session.post(f"{url}/completions", data=body,
                                        headers={"Content-Type": "application/json"}) as response:
                    buffer = b""
                    async for data in response.content.iter_any():
                        buffer += data
                        *events, buffer = buffer.split(b"\n\n")
                        for event in events:
                            payload = event.removeprefix(b"data: ")
                            if payload == b"[DONE]":
                                continue
                            chunk = orjson.loads(payload)
                            if chunk["choices"]:
                                counts["chars"] += len(chunk["choices"][0]["text"])
                            counts["events"] += 1

        await asyncio.gather(*(one() for _ in range(counts["streams"])))


def client(args: argparse.Namespace) -> None:
    """One variant in this process: print {"us_per_event", "events_per_s"} as JSON."""
    body = json.dumps({"model": "sim-teacher", "prompt": "Problem 1: count.\n<think>\n",
                       "max_tokens": 400, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    counts = {"events": 0, "chars": 0, "streams": args.streams}

    async def main() -> None:
        work = (read_aiohttp(args.url, body, counts) if args.client == "aiohttp"
                else read_httpx_or_tessy(args.url, body, args.client == "tessy", counts))
        task = asyncio.ensure_future(work)
        await asyncio.sleep(args.warmup)
        cpu, events, started = time.process_time(), counts["events"], time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu, events = time.process_time() - cpu, counts["events"] - events
        print(json.dumps({"us_per_event": 1e6 * cpu / max(1, events),
                          "events_per_s": events / (time.monotonic() - started)}), flush=True)
        task.cancel()

    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--step", type=float, default=0.02)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--client", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--loop", choices=LOOPS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args)
        return
    work = ROOT / "out" / "bench" / "transports"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with sim_replicas("teacher", 1, args.step, 100000, work / "server.log") as urls:
        for variant in VARIANTS:
            cells = []
            for loop in LOOPS:
                cmd = [sys.executable, "-m", "benchmarks.transports", "--client", variant,
                       "--loop", loop, "--url", urls[0], "--streams", str(args.streams),
                       "--warmup", str(args.warmup), "--seconds", str(args.seconds)]
                out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                                     timeout=args.warmup + args.seconds + 60)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                cells.append(f"{result['us_per_event']:.1f} ({result['events_per_s']:,.0f}/s)")
            name = NAMES[variant].format(httpx=version("httpx"), aiohttp=version("aiohttp"))
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    print(f"### Client CPU per SSE event (µs; events read per second): {args.streams} streams, "
          f"one event per {args.step * 1000:.0f} ms step each\n")
    print("| transport | " + " | ".join(LOOPS) + " |\n|---|---|---|")
    print("\n".join(rows))
    (work / "transports.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
