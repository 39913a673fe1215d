"""The one client of OpenAI-compatible servers: vLLM, SGLang, llama.cpp server, TGI.

Everything tessy asks of a server goes through `OpenAIClient`: probing `/v1/models`, the auth
header, completions (streamed as SSE or whole), chat completions, prompt scoring (`echo` +
`logprobs`), token counting, the served chat template, the mapping of transport and HTTP errors
onto tessy's error tree, and the retry policy:

    connect refused / connect timeout   -> TransientBackendError(server_down=True)
    read timeout, dropped connection    -> TransientBackendError
    HTTP 429, 502, 503, 504             -> TransientBackendError(server_down=True)
    HTTP 408, 409, 425, 500             -> TransientBackendError
    any other HTTP >= 400               -> RequestRejected (never retried)
    no server at probe time             -> ServerUnavailable (names the URL)

Transient failures are retried with `RetryPolicy` (exponential backoff, full jitter); the
synthesis engine runs its own loop over the same policy, because a retried turn continues from
the text already received and a server that is away is waited out by every problem together.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from tessy import transport
from tessy.errors import BackendError, RequestRejected, ServerUnavailable, TransientBackendError
from tessy.replicas import Replica, ReplicaSet

log = logging.getLogger("tessy")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
DOWN_STATUS = frozenset({429, 502, 503, 504})  # the server (or its proxy) is away or full
JSON_HEADERS = {"Content-Type": "application/json"}
# Token-count endpoints: vLLM/SGLang, llama.cpp's own server, llama-cpp-python's server.
TOKENIZE_DIALECTS = (("/tokenize", "prompt"), ("/tokenize", "content"),
                     ("/extras/tokenize/count", "input"))
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again."""

    retries: int = 3
    backoff: float = 1.0  # first delay in seconds; doubles with every attempt
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, backoff * 2**attempt)]."""
        return random.uniform(0, min(self.cap, self.backoff * 2**attempt))


def status_error(url: str, status: int, body: str) -> BackendError:
    """The error for an HTTP status >= 400 (see the table in the module docstring)."""
    message = f"{url}: HTTP {status}: {body[:300]}".replace("\n", " ")
    if status in RETRY_STATUS:
        return TransientBackendError(message, server_down=status in DOWN_STATUS)
    return RequestRejected(message)


@contextmanager
def mapped_errors(url: str) -> Iterator[None]:
    """Translate httpx's transport errors and bad JSON into tessy's errors."""
    try:
        yield
    except httpx.ConnectError as exc:  # refused or unreachable: the server is away
        raise TransientBackendError(f"{url}: cannot connect ({exc or type(exc).__name__})",
                                    server_down=True) from exc
    except httpx.TimeoutException as exc:
        raise TransientBackendError(f"{url}: timed out ({type(exc).__name__})",
                                    server_down=isinstance(exc, httpx.ConnectTimeout),
                                    timed_out=True) from exc
    except httpx.TransportError as exc:
        raise TransientBackendError(f"{url}: connection failed ({exc or type(exc).__name__})") from exc
    except ValueError as exc:
        raise TransientBackendError(f"{url}: malformed response ({exc})") from exc


@contextmanager
def mapped_transport_errors(url: str) -> Iterator[None]:
    """Translate the streaming transport's errors into tessy's errors (the same table)."""
    try:
        yield
    except transport.HTTPStatusError as exc:
        raise status_error(url, exc.status, exc.body) from exc
    except transport.ConnectFailed as exc:
        raise TransientBackendError(f"{url}: {exc}", server_down=True) from exc
    except transport.ReadTimeout as exc:
        raise TransientBackendError(f"{url}: timed out ({exc})", timed_out=True) from exc
    except transport.TransportError as exc:
        raise TransientBackendError(f"{url}: connection failed ({exc})") from exc
    except (transport.ProtocolError, ValueError) as exc:
        raise TransientBackendError(f"{url}: malformed response ({exc})") from exc


def proxied(url: str) -> bool:
    """Whether the environment routes `url` through a proxy (HTTP_PROXY & co, NO_PROXY)."""
    parsed, proxies = httpx.URL(url), urllib.request.getproxies()
    return (bool(proxies.get(parsed.scheme) or proxies.get("all"))
            and not urllib.request.proxy_bypass(parsed.host))


def stream_chunk(url: str, data: str | bytes) -> dict[str, Any] | None:
    """One SSE event's chunk of a streamed completion; None for `[DONE]`. An error the server
    reports inside the stream is transient."""
    if data[:1] not in (b"{", "{") and data.strip() in (b"[DONE]", "[DONE]"):
        return None
    chunk: dict[str, Any] = orjson.loads(data)
    if "error" in chunk:
        raise TransientBackendError(f"{url}: server error in stream: {chunk['error']}")
    return chunk


async def sse_events(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The `data` of each server-sent event (multi-line data joined, comments skipped); an event
    cut off by the end of the stream is still delivered."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # comments (":"), `event:`, `id:` and `retry:` lines carry nothing tessy uses
    if data:
        yield "\n".join(data)


class OpenAIClient:
    """A pooled HTTP client of one role's server replicas (or of one annotating/scoring server)."""

    def __init__(self, base_urls: list[str], *, api_key: str | None = None,
                 basic_auth: str | None = None, timeout: float = 300.0, concurrency: int = 64,
                 retry: RetryPolicy | None = None, role: str = "server",
                 route: str = "affinity") -> None:
        from tessy.secrets import split_userinfo

        cleaned = [split_userinfo(u) for u in base_urls]  # user:password never in a URL we use
        basic_auth = basic_auth or next((auth for _, auth in cleaned if auth), None)
        self.urls = [u.rstrip("/") for u, _ in cleaned]
        self.replicas = ReplicaSet(self.urls, route, alive=self.alive)
        self.role = role
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else (
            {"Authorization": "Basic " + base64.b64encode(basic_auth.encode()).decode()}
            if basic_auth else {})
        self.http = httpx.AsyncClient(
            headers=headers,
            # Sized from the configured concurrency: no hidden cap below it.
            limits=httpx.Limits(max_connections=concurrency + 4,
                                max_keepalive_connections=concurrency + 4),
            timeout=httpx.Timeout(timeout, connect=min(30.0, timeout), pool=None),
        )
        # Streams take the fast SSE transport; through a proxy, httpx (which speaks to proxies).
        self.sse = None if any(map(proxied, self.urls)) else transport.SSEPool(
            size=concurrency + 4, timeout=timeout, connect_timeout=min(30.0, timeout), headers=headers)
        self._tokenize: tuple[str, str] | None | bool = None  # False: no dialect works
        self._tokenize_offset = 0

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        self.replicas.close()
        if self.sse is not None:
            self.sse.close()
        await self.http.aclose()

    async def probe(self, model: str | None = None) -> str:
        """Check that the replicas answer `/models`; the model name (given, else the first
        listed). Replicas that do not answer start out of rotation (with a warning) while
        another one does; with none, ServerUnavailable names the URL and the flag to pass."""
        failures: list[tuple[Replica, str]] = []  # (replica, why)
        for replica in self.replicas.replicas:
            url = replica.url
            try:
                response = await self.http.get(f"{url}/models", timeout=30.0)
                response.raise_for_status()
                models = [m["id"] for m in response.json().get("data", [])]
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
                failures.append((replica, f"{self.role} server {url}/models is not ready: "
                                          f"{exc or type(exc).__name__}"))
                continue
            if not model:
                if not models:
                    raise ServerUnavailable(f"{url}/models lists no model; pass --{self.role}-model")
                model = models[0]
        if len(failures) == len(self.urls):
            raise ServerUnavailable(failures[0][1])
        for replica, why in failures:
            self.replicas.take_out(replica)
            log.warning("%s; it joins when it answers", why)
        assert model is not None
        return model

    async def alive(self, url: str) -> bool:
        """Whether a replica answers `/models` now (the probe that puts it back in rotation)."""
        try:
            response = await self.http.get(f"{url}/models", timeout=min(10.0, self.timeout))
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    async def with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again after transient failures as the retry policy says."""
        for attempt in range(self.retry.retries + 1):
            try:
                return await call()
            except TransientBackendError as exc:
                if attempt == self.retry.retries:
                    raise BackendError(f"gave up after {attempt + 1} tries: {exc}") from exc
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    async def stream_completion(self, url: str, content: bytes) -> AsyncGenerator[list[dict[str, Any]], None]:
        """One `/completions` request with `stream: true`: its SSE chunks up to `[DONE]`, a list
        per socket read (so a caller handles what one read brought at once). Closing the
        iterator closes the connection, which vLLM and SGLang treat as an abort. One attempt;
        errors mapped."""
        if self.sse is None:
            async for chunk in self._stream_httpx(url, content):
                yield [chunk]
            return
        done = False
        with mapped_transport_errors(url):
            async for events in self.sse.stream(f"{url}/completions", content):
                if done:  # past [DONE]: read on to the end, so the connection can be kept
                    continue
                chunks = []
                for data in events:
                    chunk = stream_chunk(url, data)
                    if chunk is None:
                        done = True
                        break
                    chunks.append(chunk)
                if chunks:
                    yield chunks

    async def _stream_httpx(self, url: str, content: bytes) -> AsyncGenerator[dict[str, Any], None]:
        """`stream_completion` through httpx, chunk by chunk (for proxies)."""
        with mapped_errors(url):
            async with self.http.stream("POST", f"{url}/completions", content=content,
                                        headers=JSON_HEADERS) as response:
                await self._raise_for_status(response, url)
                async for data in sse_events(response.aiter_lines()):
                    chunk = stream_chunk(url, data)
                    if chunk is None:
                        return
                    yield chunk

    async def post(self, url: str, path: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
        """One JSON POST (completions, chat, scoring), the whole answer; one attempt."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        with mapped_errors(url):
            async with self.http.stream("POST", f"{url}{path}", content=content,
                                        headers=JSON_HEADERS) as response:
                await self._raise_for_status(response, url)
                await response.aread()
                data = response.json()
        if not isinstance(data, dict):
            raise TransientBackendError(f"{url}{path}: malformed response (not an object)")
        return data

    async def chat(self, messages: list[dict[str, str]], model: str, **params: Any) -> str:
        """The assistant message of one chat completion on the first replica, with retries."""
        url = self.urls[0]

        async def call() -> str:
            data = await self.post(url, "/chat/completions",
                                   {"model": model, "messages": messages, **params})
            try:
                return data["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError) as exc:
                raise TransientBackendError(f"{url}: malformed chat answer ({exc!r})") from exc

        return await self.with_retries(call)

    async def prompt_logprobs(self, text: str, model: str) -> list[tuple[int, int, float]]:
        """(start, end, logprob) of each token of `text` as the server scores it (`echo` with
        `logprobs`, as vLLM does), with retries. The first token has no logprob and is left out."""
        url = self.urls[0]
        body = {"model": model, "prompt": text, "max_tokens": 1, "echo": True, "logprobs": 1,
                "temperature": 0}
        data = await self.with_retries(lambda: self.post(url, "/completions", body))
        lp = (data.get("choices") or [{}])[0].get("logprobs") or {}
        starts, values = lp.get("text_offset") or [], lp.get("token_logprobs") or []
        prompt_tokens = (data.get("usage") or {}).get("prompt_tokens") or 1
        if len(starts) < prompt_tokens:  # llama.cpp's own server: the generated token only
            raise BackendError(f"{url}: the server returned no prompt logprobs "
                               "(needs `echo` + `logprobs` over the prompt, as vLLM does)")
        ends = [*starts[1:], len(text)]
        return [(s, e, v) for s, e, v in zip(starts, ends, values, strict=False)
                if v is not None and s < len(text)]

    async def count_tokens(self, text: str, model: str) -> int | None:
        """Tokens of `text` by the server's tokenize endpoint (learning which dialect it speaks),
        or None where it has none."""
        if self._tokenize is False:
            return None
        dialects = [self._tokenize] if self._tokenize else TOKENIZE_DIALECTS
        for dialect in dialects:
            assert isinstance(dialect, tuple)
            n = await self._server_count(dialect, text, model)
            if n == 0 and text and self._tokenize is None:
                continue  # a server that ignores this dialect's key counts nothing (llama.cpp)
            if n is not None:
                if self._tokenize is None:  # learn it, and what it adds (a BOS) to ""
                    self._tokenize = dialect
                    self._tokenize_offset = await self._server_count(dialect, "", model) or 0
                return n - self._tokenize_offset
        self._tokenize = False
        return None

    async def _server_count(self, dialect: tuple[str, str], text: str, model: str) -> int | None:
        path, key = dialect
        root = self.urls[0].removesuffix("/v1")
        body = {"model": model, key: text, "add_special_tokens": False}
        try:
            response = await self.http.post(f"{root}{path}", json=body)
            if response.status_code != 200:
                return None
            data = response.json()
            return int(data["count"]) if "count" in data else len(data["tokens"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    async def served_chat_template(self) -> dict[str, str] | None:
        """{chat_template, bos_token, eos_token} where the server exposes them (llama.cpp's
        `/props`), else None."""
        root = self.urls[0].removesuffix("/v1")
        try:
            response = await self.http.get(f"{root}/props", timeout=30.0)
            data = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None
        template = data.get("chat_template") if isinstance(data, dict) else None
        if not isinstance(template, str) or not template:
            return None
        return {"chat_template": template, "bos_token": str(data.get("bos_token") or ""),
                "eos_token": str(data.get("eos_token") or "")}

    @staticmethod
    async def _raise_for_status(response: httpx.Response, url: str) -> None:
        if response.status_code >= 400:
            await response.aread()
            raise status_error(url, response.status_code, response.text)
