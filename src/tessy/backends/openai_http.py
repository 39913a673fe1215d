"""A role's model behind OpenAI-compatible `/v1/completions` servers, through `OpenAIClient`.

Streaming is SSE; closing the iterator closes the HTTP response, which vLLM and SGLang treat as
an abort, so a stream cut at a boundary stops decoding on the server too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson

from tessy.backends.base import BackendCounters, Delta, GenerationRequest
from tessy.config import RoleConfig
from tessy.errors import ConfigError, TransientBackendError
from tessy.openai_api import OpenAIClient


def request_body(model: str, request: GenerationRequest, stream: bool) -> dict[str, Any]:
    """The JSON body of a completions request."""
    s = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.stop:
        body["stop"] = list(request.stop)
    optional = {"top_k": s.top_k, "min_p": s.min_p, "seed": request.seed}
    body.update({k: v for k, v in optional.items() if v is not None})
    body.update(s.extra)
    return body


def delta_from_chunks(chunks: list[dict[str, Any]]) -> Delta:
    """The chunks of one socket read as one Delta: the watcher and predictor then run once per
    read, not once per token. One token per chunk that has text (vLLM streams one per step)."""
    if len(chunks) == 1:
        return delta_from_json(chunks[0])
    deltas = [delta_from_json(c) for c in chunks]
    merged = Delta("".join(d.text for d in deltas), sum(d.n_tokens for d in deltas),
                   token_chars=[len(d.text) for d in deltas if d.n_tokens])
    for d in deltas:
        merged.finish_reason = d.finish_reason or merged.finish_reason
        if d.prompt_tokens is not None or d.completion_tokens is not None:
            merged.prompt_tokens, merged.completion_tokens = d.prompt_tokens, d.completion_tokens
            merged.cached_tokens = d.cached_tokens
    return merged


def delta_from_json(data: dict[str, Any]) -> Delta:
    """One SSE chunk (or a whole non-streamed response) as a Delta."""
    choices = data.get("choices") or []
    choice = choices[0] if choices else {}
    text = choice.get("text") or ""
    delta = Delta(text, 1 if text else 0, choice.get("finish_reason"))
    usage = data.get("usage")
    if usage:
        delta.prompt_tokens = usage.get("prompt_tokens")
        delta.completion_tokens = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details") or {}
        delta.cached_tokens = details.get("cached_tokens")
    return delta


class OpenAIHTTPBackend:
    """Client of one role's server replicas; requests of one problem stick to one replica."""

    def __init__(self, config: RoleConfig) -> None:
        if not config.base_urls:
            raise ConfigError(f"{config.role}.base_urls: needs at least one URL (--{config.role})")
        self.config = config
        self.name = config.model or ""
        self.tokenizer: Any = None  # an HF tokenizer, or the server's own chat template
        self._counter: Any = None  # an HF tokenizer that counts tokens client-side
        self._counters = BackendCounters()
        self.client = OpenAIClient(config.base_urls, api_key=config.api_key,
                                   basic_auth=config.basic_auth, timeout=config.timeout,
                                   concurrency=config.concurrency, role=config.role,
                                   route=config.route)

    async def start(self) -> None:
        """Probe every replica; learn the model name if none was given; load the tokenizer."""
        self.name = await self.client.probe(self.config.model)
        if self.config.tokenizer:
            from tessy.backends.loading import load_tokenizer

            self.tokenizer = self._counter = load_tokenizer(self.config.tokenizer)
        elif self.config.template in ("chat", "chat-think", "auto"):
            from tessy.backends.served_template import ServedChatTemplate

            served = await self.client.served_chat_template()
            self.tokenizer = ServedChatTemplate(**served) if served else None

    @property
    def counters(self) -> BackendCounters:
        """What was sent and computed so far, with each replica's figures."""
        self._counters.replicas = self.client.replicas.stats()
        return self._counters

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream (or fetch whole) the completion of `request` from the replica that routing
        picks; a replica found away leaves rotation (see `tessy.replicas`)."""
        content = orjson.dumps(request_body(self.name, request, self.config.stream))
        self._counters.requests += 1
        self._counters.bytes_sent += len(content)
        with self.client.replicas.route(request.affinity) as replica:
            url = replica.url
            if not self.config.stream:
                delta = self._count(delta_from_json(await self.client.post(url, "/completions", content)))
                if delta.text and delta.completion_tokens:
                    delta.n_tokens = delta.completion_tokens
                yield delta
                return
            finished = False
            # Closed with this generator, so that a cut closes the connection at once.
            async with aclosing(self.client.stream_completion(url, content)) as chunks:
                async for batch in chunks:
                    delta = self._count(delta_from_chunks(batch))
                    finished = finished or delta.finish_reason is not None
                    yield delta
            if not finished:
                raise TransientBackendError(f"{url}: stream ended without a finish reason")

    def _count(self, delta: Delta) -> Delta:
        """Add the server-reported usage of a request (its last piece) to the counters."""
        self._counters.prompt_tokens += delta.prompt_tokens or 0
        self._counters.cached_prompt_tokens += delta.cached_tokens or 0
        return delta

    async def count_tokens(self, text: str) -> int | None:
        """Count with the configured tokenizer, else the server's tokenize endpoint."""
        if self._counter is not None:
            return len(self._counter(text, add_special_tokens=False)["input_ids"])
        return await self.client.count_tokens(text, self.name)
