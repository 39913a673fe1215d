"""The one client of OpenAI-compatible servers: vLLM, SGLang, llama.cpp server, TGI.

Everything tessy asks of a server goes through `OpenAIClient`: probing `/v1/models`, the auth
header, completions (streamed as SSE or whole), chat completions, prompt scoring (`echo` +
`logprobs`), token counting and the served chat template. Its requests go through one
`tessy.transport.Transport`, which raises every failure as tessy's errors (the table in
`tessy/transport/errors.py`):

    refused, 429/502/503/504            -> TransientBackendError(server_down=True)
    timeouts, dropped connections, 5xx  -> TransientBackendError
    any other HTTP >= 400               -> RequestRejected (never retried)
    no server at probe time             -> ServerUnavailable (names the URL)

Transient failures of a chat or scoring call are retried as `tessy.retries` says; the synthesis
engine retries its own turns there too, because a retried turn continues from the text already
received and a server that is away is waited out by every problem together.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

from tessy.errors import BackendError, ServerUnavailable, TransientBackendError
from tessy.replicas import Replica, ReplicaSet
from tessy.retries import RetryPolicy, with_retries
from tessy.transport import Transport

log = logging.getLogger("tessy")
# Token-count endpoints: vLLM/SGLang, llama.cpp's own server, llama-cpp-python's server.
TOKENIZE_DIALECTS = (("/tokenize", "prompt"), ("/tokenize", "content"),
                     ("/extras/tokenize/count", "input"))


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
        # Sized from the configured concurrency: no hidden cap below it.
        self.transport = Transport(self.urls, size=concurrency + 4, timeout=timeout, headers=headers)
        self._tokenize: tuple[str, str] | None | bool = None  # False: no dialect works
        self._tokenize_offset = 0

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        self.replicas.close()
        await self.transport.aclose()

    async def probe(self, model: str | None = None) -> str:
        """Check that the replicas answer `/models`; the model name (given, else the first
        listed). Replicas that do not answer start out of rotation (with a warning) while
        another one does; with none, ServerUnavailable names the URL and the flag to pass."""
        failures: list[tuple[Replica, str]] = []  # (replica, why)
        for replica in self.replicas.replicas:
            url = replica.url
            try:
                listed = await self.transport.get(url, "/models", 30.0)
                models = [m["id"] for m in listed.get("data", [])]
            except (BackendError, KeyError, TypeError, AttributeError) as exc:
                why = str(exc).removeprefix(f"{url}: ") or type(exc).__name__
                failures.append((replica, f"{self.role} server {url}/models is not ready: {why}"))
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
            await self.transport.get(url, "/models", min(10.0, self.timeout))
            return True
        except BackendError:
            return False

    def stream_completion(self, url: str, content: bytes) -> AsyncGenerator[list[dict[str, Any]], None]:
        """One `/completions` request with `stream: true`: its SSE chunks up to `[DONE]`, a list
        per socket read (so a caller handles what one read brought at once). Closing the
        iterator closes the connection, which vLLM and SGLang treat as an abort. One attempt."""
        return self.transport.stream(url, "/completions", content)

    async def post(self, url: str, path: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
        """One JSON POST (completions, chat, scoring), the whole answer; one attempt."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        data = await self.transport.post(url, path, content)
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

        return await with_retries(call, self.retry)

    async def prompt_logprobs(self, text: str, model: str) -> list[tuple[int, int, float]]:
        """(start, end, logprob) of each token of `text` as the server scores it (`echo` with
        `logprobs`, as vLLM does), with retries. The first token has no logprob and is left out."""
        url = self.urls[0]
        body = {"model": model, "prompt": text, "max_tokens": 1, "echo": True, "logprobs": 1,
                "temperature": 0}
        data = await with_retries(lambda: self.post(url, "/completions", body), self.retry)
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
            data = await self.transport.post(root, path, json.dumps(body).encode())
            return int(data["count"]) if "count" in data else len(data["tokens"])
        except (BackendError, ValueError, KeyError, TypeError):
            return None

    async def served_chat_template(self) -> dict[str, str] | None:
        """{chat_template, bos_token, eos_token} where the server exposes them (llama.cpp's
        `/props`), else None."""
        root = self.urls[0].removesuffix("/v1")
        try:
            data = await self.transport.get(root, "/props", 30.0)
        except BackendError:
            return None
        template = data.get("chat_template") if isinstance(data, dict) else None
        if not isinstance(template, str) or not template:
            return None
        return {"chat_template": template, "bos_token": str(data.get("bos_token") or ""),
                "eos_token": str(data.get("eos_token") or "")}
