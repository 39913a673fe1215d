"""The least client CPU a request pattern can cost: a bare asyncio reader, no tessy, no predictor.

It writes the client_load benchmark's scripted traces against the same simulated servers in one
of two request patterns, knowing from the script where every cut falls (so it runs no watcher):

* `teacher-only`: one streamed request per trace, read to the end of the thinking;
* `per-turn`: the cooperative pattern: the student writes each unit's style phrase, the teacher
  its capability sentences; each turn is a new request carrying the whole thinking so far, read
  until one token past the first word of the other role's kind (the least a word-level cut can
  read: a word is known to be whole only when the next token starts), then its connection is
  closed, which is how vLLM and SGLang abort a request;
* `per-turn-kept`: the same requests, each asking for exactly the tokens it reads, so the server
  ends it and its connection is kept for the next: what the turns would cost if a server could
  abort a request without losing the connection (a script knows its cuts; a real client cannot).

Per event it does what any client must: split the SSE framing, parse the JSON chunk with orjson,
take its text. `client_load --floor` runs it beside tessy; CPU per event of `per-turn` over
`teacher-only` is what the cooperative request pattern itself costs a client on this machine.

    python -m benchmarks.floor_client PATTERN TEACHER_URL STUDENT_URL --streams 256
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import urlsplit

import orjson
import uvloop

from benchmarks.scripted import units
from benchmarks.serving import problem_prompt
from tessy.templates import qwen3  # the template client_load gives tessy: the same prompts


class Stream(asyncio.Protocol):
    """A connection; each response's SSE event texts go to `on_text` until it returns True or
    the response ends (a chunked body's last chunk)."""

    def __init__(self) -> None:
        self.buf, self.on_text, self.done = b"", None, None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def begin(self, on_text, done: asyncio.Future) -> None:  # type: ignore[no-untyped-def]
        self.buf, self.on_text, self.done = b"", on_text, done

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while (start := buf.find(b"data: ")) >= 0 and (end := buf.find(b"\n\n", start)) >= 0:
            payload, buf = buf[start + 6:end], buf[end + 2:]
            if payload == b"[DONE]":
                continue
            choices = orjson.loads(payload)["choices"]
            if choices and self.on_text(choices[0]["text"]):
                self.finish()
                return
        if buf.endswith(b"0\r\n\r\n"):  # the last chunk: the response is whole
            self.finish()
        self.buf = buf

    def finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.finish()


async def request(address: tuple[str, int], path: str, prompt: str, on_text,  # type: ignore[no-untyped-def]
                  idle: list[Stream] | None = None, max_tokens: int = 30000) -> None:
    """POST a streamed completion; read until `on_text` says stop or the response ends. With
    `idle` (kept connections), reuse one and keep it after a whole response; else hang up."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    body = orjson.dumps({"model": "m", "prompt": prompt, "max_tokens": max_tokens,
                         "stream": True, "temperature": 0.6})
    conn = idle.pop() if idle else None
    if conn is None or conn.closed:
        _, conn = await loop.create_connection(Stream, *address)
    conn.begin(on_text, done)
    assert conn.transport is not None
    conn.transport.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
    await done
    if idle is None or conn.closed:
        conn.transport.abort()
    else:
        idle.append(conn)


async def trace(pattern: str, problem: str, servers: dict, mean_words: int,
                idle: dict[str, list[Stream]]) -> None:
    """One scripted trace in `pattern`."""
    prefix = qwen3().thinking_prompt(problem, "")
    parts = units(prefix.rpartition("<think>")[0], mean_words)
    if pattern == "teacher-only":
        await request(*servers["teacher"], prefix, lambda text: "</think>" in text)
        return
    kept = pattern == "per-turn-kept"
    thinking: list[str] = []
    for style, student, _ in parts:
        for role, keep in (("student", style), ("teacher", len(student) - style)):
            got: list[str] = []

            def on_text(text: str, got: list[str] = got, keep: int = keep) -> bool:
                got.append(text)  # one token, one word: stop a token past the last kept word
                return len(got) > keep + 1 or "</think>" in text

            await request(*servers[role], prefix + "".join(thinking), on_text,
                          idle[role] if kept else None, keep + 2 if kept else 30000)
            thinking += got[:keep]


async def main(args: argparse.Namespace) -> None:
    servers = {}
    for role, url in (("teacher", args.teacher), ("student", args.student)):
        parts = urlsplit(url)
        servers[role] = ((parts.hostname, parts.port), parts.path + "/completions")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.problems):
        queue.put_nowait(i)

    async def worker() -> None:
        idle: dict[str, list[Stream]] = {"teacher": [], "student": []}  # this worker's
        while not queue.empty():
            i = queue.get_nowait()
            await trace(args.pattern, problem_prompt(i), servers, args.mean_words, idle)

    await asyncio.gather(*(worker() for _ in range(args.streams)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pattern", choices=["teacher-only", "per-turn", "per-turn-kept"])
    parser.add_argument("teacher")
    parser.add_argument("student")
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--problems", type=int, default=100000)
    parser.add_argument("--mean-words", type=int, default=4000)
    uvloop.run(main(parser.parse_args()))
