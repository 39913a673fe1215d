"""A real OpenAI-compatible HTTP server on a local socket, scripted for tests.

It speaks `/v1/models`, `/v1/completions` (SSE and plain), `/v1/chat/completions` (plain,
answered by `chat_reply(user message)`) and `/tokenize`, writes text from
tessy's FakeBackend, and can be told to fail: a status code, a hang, a dropped stream, or
random faults of every kind (`fault_rate`). It records requests and whether a client hung up
before the stream ended. Give `port` to start a "restarted" server where an old one was.
"""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tessy.backends.fake import SCRIPTS, FakeBackend


def echo_logprobs(prompt: str) -> dict:
    """A completions answer scoring `prompt` word by word (logprob -1 each; the first: none)."""
    import re

    starts = [m.start() for m in re.finditer(r"\S+", prompt)]
    values = [None] + [-1.0] * (len(starts) - 1)
    return {"choices": [{"text": "", "finish_reason": "length",
                         "logprobs": {"text_offset": starts, "token_logprobs": values}}],
            "usage": {"prompt_tokens": len(starts), "completion_tokens": 1}}


class JSONHandler(BaseHTTPRequestHandler):
    """Quiet HTTP/1.1 request handling with JSON answers (the fake servers' base)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LocalHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving in a daemon thread for a `with` block; the
    fake servers' base (subclasses give `_handler()`)."""

    def _listen(self, port: int = 0) -> int:
        """Bind the server; returns its port."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        return self._server.server_port

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeOpenAIServer(LocalHTTPServer):
    """Start with `with FakeOpenAIServer() as srv:`; `srv.url` is the …/v1 base URL."""

    FAULTS = ("500", "503", "429", "drop", "hang", "garbage", "truncate")

    def __init__(self, model: str = "fake-model", script: str = SCRIPTS["teacher"],
                 token_delay: float = 0.0, port: int = 0, fault_rate: float = 0.0,
                 seed: int = 0, max_context: int | None = None, hang_fault: float = 2.0) -> None:
        self.model = model
        self.lm = FakeBackend(script=script)
        self.token_delay = token_delay
        self.fail_status: int | None = None  # answer every completion with this status
        self.hang_seconds = 0.0  # sleep before answering
        self.drop_after: int | None = None  # close the socket after N tokens
        # After N tokens, end the stream with this error event, as llama-server and vLLM do
        # when a request fails after its 200 head: (N, the "error" object).
        self.error_after: tuple[int, dict] | None = None
        self.fault_rate = fault_rate  # chance that a completion request meets a random fault
        self.faults: list[str] = []  # faults met so far
        self.max_context = max_context  # prompts longer than this (in words) get HTTP 400
        self.hang_fault = hang_fault  # seconds a "hang" fault sleeps
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []  # of each completion request, names lower-case
        self.fail_message = "injected failure"  # the error body's message with fail_status
        self.disconnects = 0  # streams the client closed before the end
        self.tokens_sent = 0
        self.chat_reply = lambda message: "[]"  # what /v1/chat/completions answers
        self.on_request = None  # called with each completion/chat body, in the server's thread
        self.props: dict | None = None  # what GET /props answers (llama.cpp); None: 404
        self.killed = False  # kill(): open streams are dropped
        self.url = f"http://127.0.0.1:{self._listen(port)}/v1"

    def kill(self) -> None:
        """Die like a killed process: refuse new connections and drop the open streams."""
        self.killed = True
        self.__exit__()

    def reseed(self, seed: int) -> None:
        """Another fault sequence."""
        self._rng = random.Random(seed)

    def pick_fault(self) -> str | None:
        """A fault for the next request (at random, kinds in rotation), or None."""
        with self._lock:
            if self._rng.random() >= self.fault_rate:
                return None
            fault = self.FAULTS[len(self.faults) % len(self.FAULTS)]  # every kind, in turn
            self.faults.append(fault)
            return fault

    def continuation(self, prompt: str, max_tokens: int, stop: list[str]) -> tuple[list[str], str]:
        """Tokens the scripted model writes and the finish reason."""
        tokens, text = [], ""
        for _ in range(max_tokens):
            token = self.lm.next_token(prompt + text)
            if token is None:
                return tokens, "stop"
            if any(s in text + token for s in stop):
                return tokens, "stop"
            tokens.append(token)
            text += token
        return tokens, "length"

    def _handler(self):
        srv = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": srv.model}]})
                elif self.path == "/props" and srv.props is not None:
                    self._json(200, srv.props)
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    self._json(200, {"count": len(body["prompt"].split())})
                    return
                srv.requests.append(body)
                srv.headers.append({k.lower(): v for k, v in self.headers.items()})
                if srv.on_request is not None:
                    srv.on_request(body)
                fault = srv.pick_fault()
                if body.get("echo") and not fault:  # prompt logprobs: -1 per word, as vLLM lays out
                    self._json(200, echo_logprobs(body["prompt"]))
                    return
                if self.path == "/v1/chat/completions" and not (srv.fail_status or fault):
                    reply = srv.chat_reply(body["messages"][-1]["content"])
                    self._json(200, {"choices": [{"message": {"role": "assistant", "content": reply},
                                                  "finish_reason": "stop"}]})
                    return
                if srv.hang_seconds or fault == "hang":
                    time.sleep(srv.hang_seconds or srv.hang_fault)
                status = srv.fail_status or (int(fault) if fault and fault.isdigit() else None)
                if status:
                    self._json(status, {"error": {"message": srv.fail_message}})
                    return
                n_prompt = len(body["prompt"].split())
                if srv.max_context is not None and n_prompt > srv.max_context:
                    self._json(400, {"error": {"message": f"This model's maximum context length "
                                               f"is {srv.max_context} tokens. However, your "
                                               f"prompt has {n_prompt} tokens."}})
                    return
                tokens, finish = srv.continuation(body["prompt"], body["max_tokens"],
                                                  body.get("stop") or [])
                if not body.get("stream"):
                    usage = {"prompt_tokens": 1, "completion_tokens": len(tokens)}
                    self._json(200, {"choices": [{"text": "".join(tokens),
                                                  "finish_reason": finish}], "usage": usage})
                    return
                self._stream(tokens, finish, fault)

            def _stream(self, tokens: list[str], finish: str, fault: str | None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                cut = len(tokens) // 2 if fault in ("drop", "garbage", "truncate") else None
                try:
                    for i, token in enumerate(tokens):
                        if i == cut and fault == "garbage":
                            self.wfile.write(b"data: {\"choices\": [{\"te\n\n")
                        if srv.error_after is not None and i == srv.error_after[0]:
                            self._event({"error": srv.error_after[1]})
                            self.wfile.write(b"data: [DONE]\n\n")
                            return
                        if i == cut or srv.killed or (srv.drop_after is not None and i >= srv.drop_after):
                            if fault != "truncate":
                                self.connection.shutdown(2)
                            return
                        last = i == len(tokens) - 1
                        self._event({"choices": [{"text": token,
                                                  "finish_reason": finish if last else None}]})
                        srv.tokens_sent += 1
                        time.sleep(srv.token_delay)
                    if not tokens:
                        self._event({"choices": [{"text": "", "finish_reason": finish}]})
                    self._event({"choices": [], "usage": {"prompt_tokens": 1,
                                                          "completion_tokens": len(tokens)}})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    srv.disconnects += 1
                self.close_connection = True

            def _event(self, data: dict) -> None:
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                self.wfile.flush()

        return Handler
