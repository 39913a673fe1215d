"""httpx behind the transport's interface: whole requests (probes, non-streamed completions,
chat, tokenize), and streams where a proxy is configured (httpx speaks to proxies, tessy's own
pool does not). httpx's failures are raised as the transport's (errors.py); a stream's bytes go
through the same SSE parser as the pool's reads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager

import httpx

from tessy.transport.errors import ConnectFailed, HTTPStatusError, ReadTimeout, TransportError
from tessy.transport.protocol import SSEParser

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# No proxy for this machine's loopback (where managed servers listen), whatever HTTP_PROXY says:
# a proxy elsewhere cannot reach it.
LOOPBACK_DIRECT: dict[str, httpx.AsyncBaseTransport | None] = {
    f"all://{'[::1]' if host == '::1' else host}": None for host in LOOPBACK}

JSON_HEADERS = {"Content-Type": "application/json"}


@contextmanager
def httpx_errors() -> Iterator[None]:
    """Raise httpx's transport failures as the transport's own (errors.py)."""
    try:
        yield
    except httpx.ConnectError as exc:  # refused or unreachable: the server is away
        raise ConnectFailed(f"cannot connect ({exc or type(exc).__name__})") from exc
    except httpx.ConnectTimeout as exc:
        raise ConnectFailed(f"timed out ({type(exc).__name__})") from exc
    except httpx.TimeoutException as exc:
        raise ReadTimeout(type(exc).__name__) from exc
    except httpx.TransportError as exc:
        raise TransportError(f"{exc or type(exc).__name__}") from exc


class HTTPXPool:
    """An httpx client sized like the pool (`size` connections); `stream()` as `SSEPool`'s."""

    def __init__(self, *, size: int, timeout: float, connect_timeout: float,
                 headers: dict[str, str] | None = None) -> None:
        self.client = httpx.AsyncClient(
            headers=headers,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=None),
            mounts=LOOPBACK_DIRECT,
        )

    async def stream(self, url: str, body: bytes) -> AsyncGenerator[list[bytes], None]:
        """POST `body` (JSON) to `url`; the payloads of its server-sent events, a list per read."""
        with httpx_errors():
            async with self.client.stream("POST", url, content=body,
                                          headers=JSON_HEADERS) as response:
                await _raise_for_status(response)
                parser = SSEParser()
                async for piece in response.aiter_bytes():
                    parser.feed(piece)
                    if parser.events:
                        yield parser.take()
                parser.end()
                if parser.events:
                    yield parser.take()

    async def request(self, method: str, url: str, body: bytes | None = None,
                      timeout: float | None = None) -> bytes:
        """One whole request (a JSON `body`, if any); the answer's body. `timeout`: instead of
        the client's."""
        with httpx_errors():
            async with self.client.stream(
                    method, url, content=body, headers=JSON_HEADERS if body is not None else None,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout) as response:
                await _raise_for_status(response)
                return await response.aread()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise HTTPStatusError(response.status_code, response.text)
