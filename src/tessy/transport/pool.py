"""Keep-alive connections to a client's servers, and streamed POSTs over them.

The pool holds at most `size` connections (sized from the configured concurrency, so it never
caps tessy below it). Timeouts are explicit: `connect_timeout` to open a connection, `timeout`
without a byte from the server once the request is sent. Closing the event iterator before the
response ends drops the connection, which vLLM and SGLang treat as an abort; a finished response
leaves its connection for the next request.

So each cooperative turn that ends at a cut opens a new connection. Resolving a host name on
every connect (`localhost`, a cluster's node names) cost ~60 us more CPU per connect than an
address here (`benchmarks/client_parts.py`), and a DNS round trip elsewhere; the pool keeps
the address a name last connected to for `ADDRESS_TTL` seconds, as aiohttp's DNS cache does,
and resolves again when it stops answering.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncGenerator
from functools import lru_cache
from urllib.parse import urlsplit

from tessy.transport.errors import ConnectFailed, ConnectionDropped, HTTPStatusError, ReadTimeout
from tessy.transport.protocol import READ_BUFFER, SSEConnection

Origin = tuple[str, str, int]  # scheme, host, port
ADDRESS_TTL = 10.0  # seconds a host name's address is reused without resolving it again


class SSEPool:
    """Connections of one client; `stream()` POSTs and yields the response's events."""

    def __init__(self, *, size: int, timeout: float, connect_timeout: float,
                 headers: dict[str, str] | None = None) -> None:
        self.size = size
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.extra_headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._idle: dict[Origin, list[SSEConnection]] = {}
        self._slots: asyncio.Semaphore | None = None  # made in the loop that uses it
        self._ssl: ssl.SSLContext | None = None
        self._read_buffer = bytearray(READ_BUFFER)  # every connection's (protocol.py)
        self._heads: dict[str, tuple[Origin, bytes]] = {}  # per URL, see `_head`
        self._addresses: dict[Origin, tuple[str, float]] = {}  # host name -> (address, until)

    async def stream(self, url: str, body: bytes) -> AsyncGenerator[list[bytes], None]:
        """POST `body` (JSON) to `url`; the payloads of its server-sent events, a list per socket
        read. Raises HTTPStatusError for a status >= 400 and TransportError subclasses."""
        origin, head = self._heads.get(url) or self._head(url)
        request = b"%s%d\r\n\r\n%s" % (head, len(body), body)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            conn, reused = self._idle_connection(origin), True
            if conn is None:
                conn, reused = await self._connect(origin), False
            conn.send(request)
            self._watch(conn)
            try:
                while True:
                    await conn.wait()
                    if conn.error is not None:
                        raise conn.error
                    if conn.status >= 400:  # wait() returned: the body is whole or cut off
                        raise HTTPStatusError(conn.status, b"".join(conn.body).decode("utf-8", "replace"))
                    if conn.events:
                        yield conn.take()
                    if conn.complete:
                        break
                    if conn.closed and reused and not conn.status:
                        # The server closed this kept-alive connection while it was idle; the
                        # request never reached it. Send it once more on a new connection.
                        conn.unwatch()
                        conn, reused = await self._connect(origin), False
                        conn.send(request)
                        self._watch(conn)
                    elif conn.closed:
                        raise ConnectionDropped("the connection closed mid-response")
            finally:
                conn.unwatch()
                if conn.complete and conn.keep_alive and not conn.closed:
                    conn.begin()
                    self._idle.setdefault(origin, []).append(conn)
                else:
                    conn.abort()

    def _head(self, url: str) -> tuple[Origin, bytes]:
        """The origin of `url` and the head of a POST to it up to the Content-Length value
        (made once per URL: a turn's request is one per switch)."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]  # never userinfo (it goes in Authorization)
        head = (f"POST {target} HTTP/1.1\r\nHost: {host}\r\n{self.extra_headers}"
                "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                "Content-Length: ").encode("latin-1")
        self._heads[url] = origin, head
        return origin, head

    def _watch(self, conn: SSEConnection, delay: float | None = None) -> None:
        """The read-timeout watchdog of the request on `conn`: wakes about once per `timeout`
        (not per read) and fails the request when no byte came for that long."""
        conn.watchdog = conn.loop.call_later(self.timeout if delay is None else delay,
                                             self._check, conn)

    def _check(self, conn: SSEConnection) -> None:
        idle = conn.loop.time() - conn.last_read
        if idle >= self.timeout:
            conn.fail(ReadTimeout(f"no data for {idle:.0f}s"))
        elif not conn.closed:
            self._watch(conn, self.timeout - idle)

    def _idle_connection(self, origin: Origin) -> SSEConnection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.last_read = conn.loop.time()
                return conn
        return None

    async def _connect(self, origin: Origin) -> SSEConnection:
        """A new connection to `origin`: to the address its host name last connected to while
        that is fresh, else resolving the name (and remembering the address that answered)."""
        host = origin[1]
        loop = asyncio.get_running_loop()
        cached = self._addresses.get(origin)
        if cached is not None and cached[1] > loop.time():
            try:
                return await self._open(origin, cached[0])
            except ConnectFailed:
                del self._addresses[origin]  # moved or gone: resolve the name again
        conn = await self._open(origin, host)
        if not _is_address(host) and conn.transport is not None:
            peer = conn.transport.get_extra_info("peername")
            if peer:
                self._addresses[origin] = (peer[0], loop.time() + ADDRESS_TTL)
        return conn

    async def _open(self, origin: Origin, address: str) -> SSEConnection:
        """A connection to `address` (an IP address, or the host name to resolve)."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = None
        if scheme == "https":
            self._ssl = self._ssl or ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):  # no extra task, unlike wait_for
                _, conn = await loop.create_connection(
                    lambda: SSEConnection(loop, self._read_buffer), address, port, ssl=context,
                    server_hostname=host if context else None)  # the name the certificate has
        except TimeoutError as exc:
            raise ConnectFailed(f"connect timed out after {self.connect_timeout:.0f}s") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect ({exc.strerror or exc})") from exc
        return conn

    def close(self) -> None:
        """Drop every idle connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.abort()
        self._idle.clear()


@lru_cache(maxsize=256)
def _is_address(host: str) -> bool:
    """Whether `host` is an IP address already (nothing to resolve)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
