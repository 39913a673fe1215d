"""The streaming transport: HTTP/1.1 framing and SSE parsing however the bytes are split, and the
pool's keep-alive, abort, timeout and error behaviour against real local sockets."""

from __future__ import annotations

import asyncio
import random

import pytest

from helpers import until
from tessy.transport import (
    ConnectFailed,
    ConnectionDropped,
    HTTPStatusError,
    ProtocolError,
    ReadTimeout,
    SSEConnection,
    SSEParser,
    SSEPool,
    Transport,
)

SSE = (b"data: {\"a\": 1}\n\n"
       b": a comment\n\n"
       b"event: message\r\ndata: line one\r\ndata:line two\r\n\r\n"
       b"id: 7\rdata: cr only\r\r"
       b"data: [DONE]\n\n")
EVENTS = [b"{\"a\": 1}", b"line one\nline two", b"cr only", b"[DONE]"]


def chunked(body: bytes, sizes: list[int], end: bool = True) -> bytes:
    out, pos = b"", 0
    for size in sizes:
        piece, pos = body[pos:pos + size], pos + size
        if piece:
            out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
    return out + (b"0\r\nX-Trailer: t\r\n\r\n" if end else b"")


def feed(wire: bytes, splits: list[int]) -> SSEConnection:
    """Feed `wire` to a connection in pieces cut at `splits`."""
    conn = SSEConnection(asyncio.new_event_loop())
    cuts = [0, *sorted(splits), len(wire)]
    for a, b in zip(cuts, cuts[1:], strict=False):
        if b > a:
            conn.data_received(wire[a:b])
    return conn


HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("seed", range(40))
def test_events_survive_any_split_of_chunked_bytes(seed):
    rng = random.Random(seed)
    wire = HEAD_CHUNKED + chunked(SSE, [rng.randint(1, 12) for _ in range(len(SSE))])
    conn = feed(wire, rng.sample(range(1, len(wire)), rng.randint(0, 30)))
    assert conn.take() == EVENTS
    assert conn.complete and conn.keep_alive and not conn.error


def test_every_single_byte_split():
    wire = HEAD_CHUNKED + chunked(SSE, [len(SSE)])
    conn = feed(wire, list(range(1, len(wire))))
    assert conn.take() == EVENTS and conn.complete


def test_a_crlf_split_between_reads_is_one_line_end():
    body = b"data: x\r\n\r\ndata: y\r\n\r\n"
    wire = HEAD_CHUNKED + chunked(body, [8, 1, 1, 1, 100])  # "...x\r" | "\n" | "\r" | "\n..."
    assert feed(wire, []).take() == [b"x", b"y"]


def test_content_length_and_close_delimited_bodies_and_a_cut_last_event():
    body = b"data: one\n\ndata: two"  # no blank line after the last event, no [DONE]
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    conn = feed(head + body, [len(head) + 3])
    assert conn.take() == [b"one", b"two"] and conn.complete and conn.keep_alive
    conn = feed(b"HTTP/1.0 200 OK\r\n\r\n" + body, [25])
    assert conn.take() == [b"one"] and not conn.complete and not conn.keep_alive
    conn.connection_lost(None)  # the body ends with the connection
    assert conn.take() == [b"two"] and conn.complete


def test_an_error_status_keeps_its_body_and_garbage_is_a_protocol_error():
    body = b'{"error": "no"}'
    conn = feed(f"HTTP/1.1 503 Busy\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body, [30])
    assert conn.status == 503 and b"".join(conn.body) == body and conn.take() == []
    conn = feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", [])
    assert isinstance(conn.error, ProtocolError) and conn.closed
    conn = feed(b"SSH-2.0-OpenSSH\r\n\r\n", [])
    assert isinstance(conn.error, ProtocolError)


def test_the_parser_alone_reads_multi_line_data_comments_and_a_cut_last_event():
    raw = (b": keep-alive\r\n\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: x\nid: 7\ndata:[DONE]\n\n"
           b"data: tail")
    parser = SSEParser()
    for i in range(0, len(raw), 5):  # as httpx's reads bring it, behind a proxy
        parser.feed(raw[i:i + 5])
    parser.end()
    assert parser.take() == [b'{"a":\n1}', b"[DONE]", b"tail"]


# ---------------------------------------------------------------- against real sockets

class Server:
    """A raw asyncio TCP server answering each request with `respond(n)` bytes."""

    def __init__(self, respond, host: str = "127.0.0.1", port: int = 0) -> None:
        self.respond = respond
        self.host, self.port = host, port
        self.requests: list[bytes] = []
        self.connections = 0
        self.hung_up = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                if not await self.respond(len(self.requests), writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.hung_up.set()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://{self.host}:{self.port}/v1/completions"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def sse_response(events: list[bytes]) -> bytes:
    body = b"".join(b"data: " + e + b"\n\n" for e in events)
    return HEAD_CHUNKED + chunked(body, [len(body)])


async def collect(pool: SSEPool, url: str) -> list[bytes]:
    return [e async for batch in pool.stream(url, b"{}") for e in batch]


async def test_keep_alive_reuses_one_connection_and_sends_the_headers():
    async def respond(n, writer):
        writer.write(sse_response([b"%d" % n, b"[DONE]"]))
        return True

    server = Server(respond)
    pool = SSEPool(size=4, timeout=10, connect_timeout=5, headers={"Authorization": "Bearer k"})
    async with server as url:
        assert await collect(pool, url) == [b"1", b"[DONE]"]
        assert await collect(pool, url) == [b"2", b"[DONE]"]
    pool.close()
    assert server.connections == 1
    assert b"Authorization: Bearer k\r\n" in server.requests[0]
    assert server.requests[0].startswith(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:")


async def test_through_httpx_a_stream_hangs_up_at_its_done_event():
    # (httpx's pool stalled when many requests took kept connections at once: BENCHMARKS)
    async def respond(n, writer):
        writer.write(sse_response([b'{"choices": [{"text": "%d"}]}' % n, b"[DONE]"]))
        return True

    server = Server(respond)
    async with server as url:
        transport = Transport([url], size=4, timeout=10, fast=False)
        base = url.removesuffix("/completions")
        for n in (1, 2):
            got = [c async for batch in transport.stream(base, "/completions", b"{}") for c in batch]
            assert got == [{"choices": [{"text": str(n)}]}]
        await transport.aclose()
    assert server.connections == 2


async def test_closing_the_iterator_hangs_up_and_a_status_raises():
    async def respond(n, writer):
        if n == 2:
            writer.write(b"HTTP/1.1 429 Too Many\r\nContent-Length: 4\r\n\r\nslow")
            return True
        writer.write(HEAD_CHUNKED + chunked(b"data: 1\n\n", [9], end=False))  # and then nothing more
        return True

    server = Server(respond)
    pool = SSEPool(size=4, timeout=10, connect_timeout=5)
    async with server as url:
        stream = pool.stream(url, b"{}")
        assert await anext(stream) == [b"1"]
        await stream.aclose()
        await asyncio.wait_for(server.hung_up.wait(), 10)
        with pytest.raises(HTTPStatusError) as err:
            await collect(pool, url)
        assert err.value.status == 429 and err.value.body == "slow"


async def test_read_timeout_dropped_connection_and_refused_connect():
    async def respond(n, writer):
        if n == 1:
            writer.write(HEAD_CHUNKED + chunked(b"data: 1\n\n", [9], end=False))
            return True  # then silence: the read timeout fires
        writer.write(HEAD_CHUNKED + chunked(b"data: 1\n\n", [9], end=False))
        await writer.drain()
        return False  # hang up mid-response

    server = Server(respond)
    pool = SSEPool(size=4, timeout=0.3, connect_timeout=5)
    async with server as url:
        with pytest.raises(ReadTimeout):
            await collect(pool, url)
        with pytest.raises(ConnectionDropped):
            await collect(pool, url)
    with pytest.raises(ConnectFailed):
        await collect(pool, url)


async def test_a_kept_alive_connection_the_server_closed_is_replaced():
    async def respond(n, writer):
        writer.write(sse_response([b"%d" % n]))
        return False  # answers, then closes the kept-alive connection

    server = Server(respond)
    pool = SSEPool(size=4, timeout=10, connect_timeout=5)
    async with server as url:
        assert await collect(pool, url) == [b"1"]
        assert await collect(pool, url) == [b"2"]
    assert server.connections == 2


async def test_a_slow_steady_stream_outlives_the_timeout_and_its_connection_stays_usable():
    async def respond(n, writer):
        writer.write(HEAD_CHUNKED)
        for i in range(10):  # 10 x 50 ms: longer than the 0.2 s timeout, never silent that long
            writer.write(chunked(b"data: %d\n\n" % i, [9], end=False))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        return True

    server = Server(respond)
    pool = SSEPool(size=4, timeout=0.2, connect_timeout=5)
    async with server as url:
        assert len(await collect(pool, url)) == 10
        (idle,) = [conn for conns in pool._idle.values() for conn in conns]
        # Idle in the pool for twice the timeout: a watchdog left armed would have failed it.
        await until(lambda: idle.loop.time() - idle.last_read > 2 * pool.timeout)
        assert len(await collect(pool, url)) == 10
    assert server.connections == 1


async def test_a_host_name_is_resolved_once_and_again_when_its_address_stops_answering():
    async def respond(n, writer):
        writer.write(HEAD_CHUNKED + chunked(b"data: 1\n\n", [9], end=False))
        return True  # and the stream goes on: the caller hangs up, as at a cut

    async def first_event(pool, url):
        stream = pool.stream(url, b"{}")
        assert await anext(stream) == [b"1"]
        await stream.aclose()  # a new connection per request, as each cut makes

    here, elsewhere = Server(respond), Server(respond, host="127.0.0.2")
    pool = SSEPool(size=4, timeout=10, connect_timeout=5)
    async with here as url:
        url = url.replace("127.0.0.1", "localhost")
        await first_event(pool, url)
        ((origin, (address, _)),) = pool._addresses.items()
        assert address == "127.0.0.1" and origin[1] == "localhost"
        # While fresh, the address is used as it is: one that another server answers now
        # gets the request, the name is not looked up again.
        elsewhere.port = here.port
        async with elsewhere:
            pool._addresses[origin] = ("127.0.0.2", pool._addresses[origin][1])
            await first_event(pool, url)
            assert (here.connections, elsewhere.connections) == (1, 1)
            pool._addresses[origin] = ("127.0.0.2", 0.0)  # expired: the name is resolved
            await first_event(pool, url)
            assert (here.connections, elsewhere.connections) == (2, 1)
            pool._addresses[origin] = ("127.0.0.2", pool._addresses[origin][1])
        # Gone from there: the name is resolved again, the request still reaches a server.
        await first_event(pool, url)
        assert here.connections == 3 and pool._addresses[origin][0] == "127.0.0.1"
    pool.close()
