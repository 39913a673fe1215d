"""One HTTP/1.1 connection that reads a response as server-sent events, on asyncio's Protocol API.

Why by hand: a streamed completion delivers one small SSE event per decode step, and at 256
streams x 50 tokens/s the client handles ~13k socket reads a second. A generic HTTP stack spends
100+ us of Python per read (buffers, line iterators, several awaits); here one `data_received`
call parses the framing (chunked, Content-Length or close-delimited) and splits the events in
place, and the consumer wakes once per read to take every event that read carried.

SSE as the spec has it: events end at a blank line; `data:` lines of one event are joined with
"\n"; comments and other fields are skipped; CRLF, CR and LF all end lines (a CR at the end of a
read waits for a possible LF); an event cut off by the end of the body is still delivered.
`SSEParser` is that part alone: streams read through httpx (behind a proxy) go through it too.
"""

from __future__ import annotations

import asyncio

from tessy.transport.errors import ProtocolError

MAX_HEAD = 64 * 1024  # a response head larger than this is not a server we know
READ_BUFFER = 64 * 1024


class SSEParser:
    """Server-sent events from a body's bytes however they are split: `feed` each piece as it
    arrives, `take` the payloads of the events it completed, `end` when the body ends."""

    def __init__(self) -> None:
        self.events: list[bytes] = []  # event payloads not yet taken
        self._sse = b""  # event bytes not yet ended by a blank line

    def take(self) -> list[bytes]:
        """The events that arrived since the last call."""
        events, self.events = self.events, []
        return events

    def feed(self, piece: bytes) -> None:
        """Split off every event `piece` completes (one read: the hot path)."""
        sse = self._sse + piece if self._sse else piece
        held = b""
        if b"\r" in sse:  # CRLF or CR line ends: make them LF (a final CR may be half a CRLF)
            if sse.endswith(b"\r"):
                sse, held = sse[:-1], b"\r"
            sse = sse.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = 0
        while (end := sse.find(b"\n\n", start)) >= 0:
            block = sse[start:end]
            start = end + 2
            if block.startswith(b"data: ") and b"\n" not in block:  # the common case
                self.events.append(block[6:])
            elif block:
                self._event(block)
        self._sse = sse[start:] + held

    def end(self) -> None:
        """The body ended: an event it cut off is still delivered."""
        if self._sse.strip(b"\r\n"):
            self._event(self._sse.replace(b"\r\n", b"\n").replace(b"\r", b"\n").strip(b"\n"))
        self._sse = b""

    def _event(self, block: bytes) -> None:
        data = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # comments (":"), `event:`, `id:` and `retry:` carry nothing tessy uses
        if data:
            self.events.append(b"\n".join(data))


class SSEConnection(SSEParser, asyncio.BufferedProtocol):
    """A keep-alive connection; `begin()` before each request, then read events with `wait()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_buffer: bytearray | None = None) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False  # the connection is gone (lost, or closed by us)
        self.error: BaseException | None = None  # what ended the response early
        self.last_read = loop.time()  # when bytes last arrived: the read-timeout watchdog
        self.watchdog: asyncio.TimerHandle | None = None  # the pool's, while a request runs
        # Reads land in one reused buffer: stock asyncio would allocate 256 KiB per read. The
        # connections of a pool share one (a read is copied out before the next can start), so
        # a connection per turn costs no 64 KiB allocation either.
        self._read_buffer = bytearray(READ_BUFFER) if read_buffer is None else read_buffer
        self._read_view = memoryview(self._read_buffer)
        self.begin()

    # ---------------------------------------------------------------- the consumer's side

    def begin(self) -> None:
        """Forget the previous response; the next bytes start a new one."""
        self.status = 0
        self.head: dict[str, str] = {}
        self.keep_alive = True
        self.complete = False  # the whole body has arrived
        SSEParser.__init__(self)  # no events, no event bytes
        self.body: list[bytes] = []  # the raw body, when it is not an event stream
        self._sse_body = False
        self._buf = b""  # head or chunk framing bytes not yet parsed
        self._mode = ""  # "chunked", "length" or "close": how the body ends
        self._remaining = 0  # bytes left in the current chunk, or of the Content-Length
        self._skip = 0  # CRLF bytes after a chunk still to skip
        self._trailers = False  # after the last chunk: trailer lines until a blank one
        self._waiter: asyncio.Future[None] | None = None
        self.error = None

    def send(self, data: bytes) -> None:
        """Write a request."""
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self) -> None:
        """Until events arrive, the body completes, or the connection fails."""
        if self.events or self.complete or self.error or self.closed:
            return
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def unwatch(self) -> None:
        """Stop the read-timeout watchdog (the request is over)."""
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def fail(self, error: BaseException) -> None:
        """End the response with `error` (a timeout) and drop the connection."""
        self.error = error
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (the server sees the client hang up)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    # ---------------------------------------------------------------- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._mode == "close" and not self.complete:  # the body ends with the connection
            self._finish()
        self._wake()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        try:
            if not self._mode:
                data = self._read_head(data)
                if not self._mode:
                    return
            if self.complete:
                pass  # nothing may follow a finished response
            elif self._mode == "chunked":
                self._read_chunked(data)
            elif self._mode == "length":
                piece = data[:self._remaining]
                self._remaining -= len(piece)
                self._content(piece)
                if not self._remaining:
                    self._finish()
            else:
                self._content(data)
        except (ProtocolError, ValueError) as exc:
            self.error = ProtocolError(f"malformed HTTP response: {exc}")
            self.abort()
            return
        if self.events or self.complete:
            self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends a close-delimited body

    # ---------------------------------------------------------------- parsing

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _read_head(self, data: bytes) -> bytes:
        """Parse the status line and headers once they are whole; the bytes after them."""
        buf = self._buf + data if self._buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError("response head too long")
            self._buf = buf
            return b""
        self._buf = b""
        lines = buf[:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/"):
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(rest[:3])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.head[name.strip().lower()] = value.strip()
        connection = self.head.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        self._sse_body = 200 <= self.status < 300
        if "chunked" in self.head.get("transfer-encoding", "").lower():
            self._mode = "chunked"
        elif "content-length" in self.head:
            self._mode, self._remaining = "length", int(self.head["content-length"])
            if not self._remaining:
                self._finish()
        else:
            self._mode, self.keep_alive = "close", False
        return buf[end + 4:]

    def _read_chunked(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, n = 0, len(buf)
        while pos < n and not self.complete:
            if self._remaining:  # inside a chunk's data
                end = min(n, pos + self._remaining)
                self._content(buf[pos:end])
                self._remaining -= end - pos
                pos = end
                if not self._remaining:
                    self._skip = 2
            elif self._skip:  # the CRLF that ends a chunk
                step = min(self._skip, n - pos)
                pos += step
                self._skip -= step
            else:  # a chunk-size line, or a trailer line after the last chunk
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 1024:
                        raise ProtocolError("chunk header too long")
                    break
                line, pos = buf[pos:eol], eol + 2
                if self._trailers:
                    if not line:
                        self._finish()
                elif (size := int(line.split(b";", 1)[0], 16)) == 0:
                    self._trailers = True
                else:
                    self._remaining = size
        self._buf = buf[pos:]

    def _content(self, piece: bytes) -> None:
        if self._sse_body:
            self.feed(piece)
        else:
            self.body.append(piece)

    def _finish(self) -> None:
        self.complete = True
        self.end()
