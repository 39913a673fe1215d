"""A simulated OpenAI-compatible inference server with a cost model, for scheduling benchmarks.

It speaks what tessy uses (`/v1/models`, `/v1/completions` streamed or not, `/tokenize`) plus
vLLM-style Prometheus counters at `/metrics`, and spends time the way a continuous-batching
engine does (vLLM, SGLang):

* each request first costs `overhead` seconds plus `tokenize` per prompt token (HTTP, parsing,
  tokenization), off the engine, in parallel with it;
* the engine runs steps; a step takes `decode + per_seq x running + prefill x new prompt tokens`
  and gives every running request one token; a new request joins at the next step boundary and
  its first token comes at the end of the step that prefilled it;
* prefill is paid only for prompt tokens not in the prefix cache (blocks of `block` tokens,
  chained hashes, cached as they fill, LRU, like vLLM v1's automatic prefix caching); a request
  that ends or is aborted leaves its prompt and output in the cache;
* usage reports `prompt_tokens_details.cached_tokens` as vLLM does with
  `--enable-prompt-tokens-details`, in the last chunk when `stream_options.include_usage`;
* a client that hangs up aborts its request at the next token (vLLM and SGLang do the same).

Tokens are words (`str.split`), the text comes from `benchmarks.scripted`. Run it alone with
`python -m benchmarks.simserver --role teacher [--replicas N]`; it prints `READY <url>...` when
it listens. Several replicas share the process but nothing else (engine, cache, counters).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from benchmarks.scripted import ScriptedModel

FINISH = object()  # sentinel on a request's queue: no more tokens


@dataclass
class CostModel:
    """Seconds per unit of work. The defaults are in the range vLLM shows for an 8B model on one
    H100: ~100 tokens/s per sequence at small batch, ~20k prefill tokens/s, a few ms per request."""

    overhead: float = 0.004  # per request: HTTP, JSON, scheduling
    tokenize: float = 2e-7  # per prompt token, before the engine sees the request
    decode: float = 0.010  # per engine step
    per_seq: float = 1e-4  # per running sequence per step (batching is not free)
    prefill: float = 5e-5  # per prompt token not found in the prefix cache
    block: int = 16  # prefix-cache block, in tokens
    cache_blocks: int = 1 << 20  # LRU capacity, in blocks
    max_batch: int = 256  # most running sequences (vLLM's max_num_seqs)


class PrefixCache:
    """Token blocks keyed by the hash of everything up to them (vLLM's scheme), LRU.

    As in vLLM's v1 KV cache manager, a block is cached as soon as it is full: a prompt's whole
    blocks at prefill, and each block of generated tokens the step that fills it, so a request
    that continues a running (or aborted) one finds its text up to the last whole block.
    Finished requests leave their blocks cached until evicted, least recently used first.
    """

    def __init__(self, block: int, capacity: int) -> None:
        self.block = block
        self.capacity = capacity
        self.blocks: OrderedDict[int, None] = OrderedDict()

    def _keys(self, tokens: list[str]) -> Iterator[int]:
        key = 0
        for i in range(0, len(tokens) - len(tokens) % self.block, self.block):
            key = self.chain(key, tokens[i:i + self.block])
            yield key

    @staticmethod
    def chain(parent: int, block: list[str]) -> int:
        """A block's key: its parent's key and its own tokens."""
        return hash((parent, *block))

    def add(self, key: int) -> None:
        """Cache one block by key (the newest in LRU order)."""
        self.blocks[key] = None
        self.blocks.move_to_end(key)
        if len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)

    def hit(self, tokens: list[str]) -> int:
        """Leading tokens of `tokens` already cached (whole blocks; the last token never)."""
        n = 0
        for key in self._keys(tokens):
            if key not in self.blocks:
                break
            self.blocks.move_to_end(key)
            n += self.block
        # vLLM never serves the last prompt token from cache, and hits are whole blocks.
        return min(n, max(0, len(tokens) - 1) // self.block * self.block)

    def insert(self, tokens: list[str]) -> int:
        """Cache every whole block of `tokens`; the key of the last one (0: none)."""
        key = 0
        for key in self._keys(tokens):
            self.add(key)
        return key


@dataclass
class _Sequence:
    prompt: list[str]
    tokens: Iterator[str]
    max_tokens: int
    stop: list[str]
    out: asyncio.Queue = field(default_factory=asyncio.Queue)
    output: list[str] = field(default_factory=list)
    aborted: bool = False
    finish: str | None = None
    cached: int = 0  # prompt tokens found in the prefix cache
    tail: list[str] = field(default_factory=list)  # tokens after the last whole cached block
    key: int = 0  # cache key of the last whole block


class SimServer:
    """The engine and its counters; `app()` is the aiohttp application."""

    def __init__(self, model: ScriptedModel, cost: CostModel, name: str) -> None:
        self.model = model
        self.cost = cost
        self.name = name
        self.cache = PrefixCache(cost.block, cost.cache_blocks)
        self.waiting: deque[_Sequence] = deque()
        self.running: list[_Sequence] = []
        self._wake = asyncio.Event()
        self.counters = dict.fromkeys(
            ("requests", "request_bytes", "prompt_tokens", "cached_tokens", "generation_tokens",
             "aborted", "finished", "steps", "busy_seconds", "streamed_events"), 0)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_get("/metrics", self._metrics)
        app.on_startup.append(self._start_engine)
        app.on_cleanup.append(self._stop_engine)
        return app

    async def _start_engine(self, app: web.Application) -> None:
        self._engine_task = asyncio.create_task(self._engine())

    async def _stop_engine(self, app: web.Application) -> None:
        self._engine_task.cancel()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.name}]})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"count": len(body.get("prompt", "").split())})

    async def _metrics(self, request: web.Request) -> web.Response:
        c = self.counters
        lines = [
            f"vllm:num_requests_running {len(self.running)}",
            f"vllm:prompt_tokens_total {c['prompt_tokens']}",
            f"vllm:generation_tokens_total {c['generation_tokens']}",
            f"vllm:prefix_cache_queries_total {c['prompt_tokens']}",
            f"vllm:prefix_cache_hits_total {c['cached_tokens']}",
            f'vllm:request_success_total{{finished_reason="any"}} {c["finished"]}',
            f"sim:requests_total {c['requests']}",
            f"sim:request_bytes_total {c['request_bytes']}",
            f"sim:aborted_total {c['aborted']}",
            f"sim:steps_total {c['steps']}",
            f"sim:streamed_events_total {c['streamed_events']}",
            f"sim:busy_seconds_total {c['busy_seconds']:.6f}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        prompt = body["prompt"]
        self.counters["requests"] += 1
        self.counters["request_bytes"] += len(raw)
        words = prompt.split()
        await asyncio.sleep(self.cost.overhead + self.cost.tokenize * len(words))
        seq = _Sequence(words, self.model.continuation(prompt), int(body.get("max_tokens", 16)),
                        list(body.get("stop") or []))
        self.waiting.append(seq)
        self._wake.set()
        if not body.get("stream"):
            text = "".join([t async for t, _ in _drain(seq)])
            return web.json_response({"choices": [{"text": text, "finish_reason": seq.finish}],
                                      "usage": self._usage(seq)})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        # vLLM's chunk layout (one event per engine step; the finish rides on the last token's
        # chunk, or an empty one), so the client parses as many bytes as it would there.
        head = (b'data: {"id":"cmpl-%d","object":"text_completion","created":%d,"model":%s,'
                b'"choices":[{"index":0,"text":' % (self.counters["requests"], int(time.time()),
                                                    json.dumps(self.name).encode()))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        tail = b',"logprobs":null,"finish_reason":%s,"stop_reason":null,"prompt_token_ids":null,' \
               b'"token_ids":null}]}\n\n'
        try:
            await response.prepare(request)
            finished = False
            async for token, finish in _drain(seq):
                finished = finish is not None
                await response.write(head + json.dumps(token).encode() + tail % json.dumps(finish).encode())
                self.counters["streamed_events"] += 1
            # EOS or a stop string: the step's text is empty, the chunk still carries the finish.
            last = b"" if finished else head + b'""' + tail % json.dumps(seq.finish).encode()
            if usage:  # include_usage: one more chunk, with no choices
                last += (b'data: {"id":"cmpl-%d","object":"text_completion","choices":[],"usage":%s}\n\n'
                         % (self.counters["requests"], json.dumps(self._usage(seq)).encode()))
            await response.write(last + b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            seq.aborted = True  # the client hung up: the engine drops it at its next step
            raise
        return response

    def _usage(self, seq: _Sequence) -> dict:
        return {"prompt_tokens": len(seq.prompt), "completion_tokens": len(seq.output),
                "prompt_tokens_details": {"cached_tokens": seq.cached}}

    async def _engine(self) -> None:
        loop = asyncio.get_running_loop()
        cost, c = self.cost, self.counters
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            new_tokens = 0
            while self.waiting and len(self.running) < cost.max_batch:
                seq = self.waiting.popleft()
                if seq.aborted:
                    continue
                hit = seq.cached = self.cache.hit(seq.prompt)
                c["prompt_tokens"] += len(seq.prompt)
                c["cached_tokens"] += hit
                new_tokens += len(seq.prompt) - hit
                seq.key = self.cache.insert(seq.prompt)
                seq.tail = seq.prompt[len(seq.prompt) - len(seq.prompt) % self.cache.block:]
                self.running.append(seq)
            seconds = cost.decode + cost.per_seq * len(self.running) + cost.prefill * new_tokens
            started = loop.time()
            await asyncio.sleep(seconds)
            c["busy_seconds"] += loop.time() - started
            c["steps"] += 1
            still = []
            for seq in self.running:
                if not seq.aborted:
                    self._advance(seq)
                if seq.aborted or seq.finish:
                    c["aborted" if seq.aborted else "finished"] += 1
                    seq.out.put_nowait(FINISH)
                else:
                    still.append(seq)
            self.running = still

    def _advance(self, seq: _Sequence) -> None:
        """One decode step of `seq`: its next token, or its finish."""
        token = next(seq.tokens, None)
        if token is None:
            seq.finish = "stop"
            return
        seq.output.append(token)
        self.counters["generation_tokens"] += 1
        seq.tail.append(token.strip())
        if len(seq.tail) == self.cache.block:  # a block just filled: reusable from now on
            seq.key = self.cache.chain(seq.key, seq.tail)
            self.cache.add(seq.key)
            seq.tail = []
        if seq.stop and any(s in "".join(seq.output[-8:]) for s in seq.stop):
            seq.finish = "stop"
            return
        if len(seq.output) >= seq.max_tokens:
            seq.finish = "length"
        seq.out.put_nowait((token, seq.finish))


async def _drain(seq: _Sequence):
    while (item := await seq.out.get()) is not FINISH:
        yield item


async def serve(role: str, cost: CostModel, port: int = 0, mean_words: int = 1000,
                host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Start a server in the running loop; returns the runner (to clean up) and its …/v1 URL."""
    server = SimServer(ScriptedModel(role, mean_words), cost, f"sim-{role}")
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://{host}:{port}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["teacher", "student"], required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mean-words", type=int, default=1000, help="Mean thinking length.")
    parser.add_argument("--replicas", type=int, default=1,
                        help="Independent servers (engine, cache) on ports PORT, PORT+1, ...")
    for name, value in vars(CostModel()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    cost = CostModel(**{k: getattr(args, k) for k in vars(CostModel())})

    async def run() -> None:
        served = [await serve(args.role, cost, args.port + i if args.port else 0, args.mean_words)
                  for i in range(args.replicas)]
        print("READY " + " ".join(url for _, url in served), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            for runner, _ in served:
                await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
