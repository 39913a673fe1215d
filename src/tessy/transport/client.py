"""Every request of one client to its servers: one interface, one error map.

Streamed completions take tessy's own pool (pool.py) unless the environment routes the URL
through a proxy (HTTP_PROXY & co, NO_PROXY): then httpx, which speaks to proxies, reads them into
the same SSE parser. Whole requests (probes, non-streamed completions, chat, tokenize) take
httpx. Whatever fails on either way is raised as tessy's errors by the table in errors.py.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx
import orjson

from tessy.transport.errors import mapped_errors, stream_error
from tessy.transport.httpx_pool import LOOPBACK, HTTPXPool
from tessy.transport.pool import SSEPool


def proxied(url: str) -> bool:
    """Whether the environment routes `url` through a proxy (HTTP_PROXY & co, NO_PROXY); never
    this machine's loopback, which no proxy can reach (tessy's managed servers listen there)."""
    parsed, proxies = httpx.URL(url), urllib.request.getproxies()
    return (bool(proxies.get(parsed.scheme) or proxies.get("all"))
            and parsed.host not in LOOPBACK and not urllib.request.proxy_bypass(parsed.host))


def stream_chunk(url: str, data: bytes) -> dict[str, Any] | None:
    """One SSE event's chunk of a streamed completion; None for `[DONE]`. An error the server
    reports inside the stream is raised as `stream_error` classes it."""
    if data[:1] != b"{" and data.strip() == b"[DONE]":
        return None
    chunk: dict[str, Any] = orjson.loads(data)
    if "error" in chunk or chunk.get("object") == "error":  # vLLM's older layout: no "error" key
        raise stream_error(url, chunk.get("error") or chunk)
    return chunk


class Transport:
    """The connections of one client; `size` of them at most on each way (no hidden cap below
    the configured concurrency). `fast`: streams on tessy's own pool (None: unless proxied)."""

    def __init__(self, urls: list[str], *, size: int, timeout: float,
                 headers: dict[str, str] | None = None, fast: bool | None = None) -> None:
        connect = min(30.0, timeout)
        self.http = HTTPXPool(size=size, timeout=timeout, connect_timeout=connect, headers=headers)
        if fast is None:
            fast = not any(map(proxied, urls))
        self.streams: SSEPool | HTTPXPool = SSEPool(
            size=size, timeout=timeout, connect_timeout=connect, headers=headers) if fast else self.http

    @property
    def fast(self) -> bool:
        """Whether streams take tessy's own pool."""
        return isinstance(self.streams, SSEPool)

    async def stream(self, url: str, path: str, body: bytes
                     ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """POST `body` to `url + path` with `stream: true`: its JSON chunks up to `[DONE]`, a list
        per read. Closing the iterator closes the connection (an abort to vLLM and SGLang)."""
        done = False
        # Closed with this generator: the pool hangs up at once, not from a finalizer task
        # on a later loop turn (one per cut otherwise).
        with mapped_errors(url):
            async with aclosing(self.streams.stream(f"{url}{path}", body)) as stream:
                async for events in stream:
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
                    if done and not self.fast:
                        # httpx: hang up at [DONE] rather than keep the connection. Requests
                        # that took kept connections at once stalled httpcore's pool
                        # (BENCHMARKS, transports: 6k of 11.7k events/s at 3x the CPU).
                        break

    async def post(self, url: str, path: str, body: bytes) -> Any:
        """POST a JSON `body` to `url + path`; the JSON answer."""
        with mapped_errors(url):
            return json.loads(await self.http.request("POST", f"{url}{path}", body))

    async def get(self, url: str, path: str, timeout: float | None = None) -> Any:
        """GET `url + path`; the JSON answer."""
        with mapped_errors(url):
            return json.loads(await self.http.request("GET", f"{url}{path}", timeout=timeout))

    async def aclose(self) -> None:
        """Close every connection."""
        if isinstance(self.streams, SSEPool):
            self.streams.close()
        await self.http.aclose()
