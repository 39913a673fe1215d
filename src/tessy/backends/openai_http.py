"""Any OpenAI-compatible `/v1/completions` server: vLLM, SGLang, llama.cpp server, TGI.

Streaming is SSE; closing the iterator closes the HTTP response, which vLLM and SGLang treat as
an abort, so a stream cut at a boundary stops decoding on the server too.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tessy.backends.base import BackendCounters, Delta, GenerationRequest
from tessy.config import ModelConfig
from tessy.errors import ConfigError, RequestRejected, ServerUnavailable, TransientBackendError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DOWN_STATUS = {429, 502, 503, 504}  # the server (or its proxy) is away or full, not this request
# Token-count endpoints: vLLM/SGLang, llama.cpp's own server, llama-cpp-python's server.
JSON = {"Content-Type": "application/json"}
TOKENIZE_DIALECTS = (("/tokenize", "prompt"), ("/tokenize", "content"),
                     ("/extras/tokenize/count", "input"))


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


def _delta_from_json(data: dict[str, Any]) -> Delta:
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

    tokenizer: Any = None

    def __init__(self, config: ModelConfig) -> None:
        if not config.base_urls:
            raise ConfigError(f"{config.role}.base_urls: needs at least one URL (--{config.role})")
        self.config = config
        self.urls = [u.rstrip("/") for u in config.base_urls]
        self.name = config.model or ""
        self._tokenize_dialect: tuple[str, str] | None | bool = None  # False: none works
        self._tokenize_offset = 0
        self.counters = BackendCounters()
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        n = config.concurrency
        self.client = httpx.AsyncClient(
            headers=headers,
            # Sized from the configured concurrency: no hidden cap below it.
            limits=httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4),
            timeout=httpx.Timeout(config.timeout, connect=min(30.0, config.timeout), pool=None),
        )

    def url_for(self, affinity: str) -> str:
        """The replica of a problem: stable across its requests, for prefix caching."""
        return self.urls[zlib.crc32(affinity.encode()) % len(self.urls)]

    async def start(self) -> None:
        """Probe `/models` on every replica; learn the model name if none was given."""
        for url in self.urls:
            try:
                response = await self.client.get(f"{url}/models", timeout=30.0)
                response.raise_for_status()
                models = [m["id"] for m in response.json().get("data", [])]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                raise ServerUnavailable(
                    f"{self.config.role} server {url}/models is not ready: {exc or type(exc).__name__}"
                ) from exc
            if not self.name:
                if not models:
                    raise ServerUnavailable(f"{url}/models lists no model; pass --{self.config.role}-model")
                self.name = models[0]
        if self.config.tokenizer:
            from tessy.backends.loading import load_tokenizer

            self.tokenizer = load_tokenizer(self.config.tokenizer)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Stream (or fetch whole) the completion of `request`."""
        url = f"{self.url_for(request.affinity)}/completions"
        content = json.dumps(request_body(self.name, request, self.config.stream)).encode()
        self.counters.requests += 1
        self.counters.bytes_sent += len(content)
        try:
            async with self.client.stream("POST", url, content=content, headers=JSON) as response:
                await self._raise_for_status(response, url)
                if not self.config.stream:
                    await response.aread()
                    delta = self._count(_delta_from_json(response.json()))
                    if delta.text and delta.completion_tokens:
                        delta.n_tokens = delta.completion_tokens
                    yield delta
                    return
                async for delta in self._read_sse(response, url):
                    yield self._count(delta)
        except httpx.ConnectError as exc:  # refused or unreachable: the server is away
            raise TransientBackendError(f"{url}: cannot connect ({exc or type(exc).__name__})",
                                        server_down=True) from exc
        except httpx.TimeoutException as exc:
            down = isinstance(exc, httpx.ConnectTimeout)
            raise TransientBackendError(f"{url}: timed out ({type(exc).__name__})",
                                        server_down=down) from exc
        except httpx.TransportError as exc:
            raise TransientBackendError(f"{url}: connection failed ({exc or type(exc).__name__})") from exc
        except ValueError as exc:
            raise TransientBackendError(f"{url}: malformed response ({exc})") from exc

    def _count(self, delta: Delta) -> Delta:
        """Add the server-reported usage of a request (its last piece) to the counters."""
        self.counters.prompt_tokens += delta.prompt_tokens or 0
        self.counters.cached_prompt_tokens += delta.cached_tokens or 0
        return delta

    async def _read_sse(self, response: httpx.Response, url: str) -> AsyncIterator[Delta]:
        finished = False
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, event: lines
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            data = json.loads(payload)
            if "error" in data:
                raise TransientBackendError(f"{url}: server error in stream: {data['error']}")
            delta = _delta_from_json(data)
            finished = finished or delta.finish_reason is not None
            yield delta
        if not finished:
            raise TransientBackendError(f"{url}: stream ended without a finish reason")

    async def _raise_for_status(self, response: httpx.Response, url: str) -> None:
        if response.status_code < 400:
            return
        await response.aread()
        detail = response.text[:300].replace("\n", " ")
        message = f"{url}: HTTP {response.status_code}: {detail}"
        if response.status_code in RETRY_STATUS:
            raise TransientBackendError(message, server_down=response.status_code in DOWN_STATUS)
        raise RequestRejected(message)

    async def count_tokens(self, text: str) -> int | None:
        """Count with the configured tokenizer, else the server's tokenize endpoint."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self._tokenize_dialect is False:
            return None
        for dialect in [self._tokenize_dialect] if self._tokenize_dialect else TOKENIZE_DIALECTS:
            n = await self._server_count(dialect, text)
            if n is not None:
                if self._tokenize_dialect is None:  # learn it, and what it adds (a BOS) to ""
                    self._tokenize_dialect = dialect
                    self._tokenize_offset = await self._server_count(dialect, "") or 0
                return n - self._tokenize_offset
        self._tokenize_dialect = False
        return None

    async def _server_count(self, dialect: tuple[str, str], text: str) -> int | None:
        path, key = dialect
        root = self.urls[0].removesuffix("/v1")
        body = {"model": self.name, key: text, "add_special_tokens": False}
        try:
            response = await self.client.post(f"{root}{path}", json=body)
            if response.status_code != 200:
                return None
            data = response.json()
            return int(data["count"]) if "count" in data else len(data["tokens"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
