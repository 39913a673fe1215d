"""The HTTP backend against a real local server over sockets (no mocks)."""

from __future__ import annotations

import socket
from contextlib import aclosing

import pytest

from fake_server import FakeOpenAIServer
from helpers import until
from tessy.backends.base import GenerationRequest
from tessy.backends.openai_http import OpenAIHTTPBackend, request_body
from tessy.config import RoleConfig, SamplingConfig
from tessy.errors import RequestRejected, ServerUnavailable, TransientBackendError


def backend_for(*urls: str, **kwargs) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend(RoleConfig(role="teacher", base_urls=list(urls), **kwargs))


async def collect(backend, request):
    deltas = []
    async with aclosing(backend.generate(request)) as stream:
        async for d in stream:
            deltas.append(d)
    return deltas


async def test_probe_learns_model_name(server):
    backend = backend_for(server.url)
    await backend.start()
    assert backend.name == "fake-model"
    await backend.close()


async def test_probe_failure_names_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    backend = backend_for(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{port}/v1/models"):
        await backend.start()
    await backend.close()


@pytest.mark.parametrize("stream", [True, False])
async def test_generate_streaming_and_plain(server, stream):
    backend = backend_for(server.url, stream=stream)
    await backend.start()
    deltas = await collect(backend, GenerationRequest("<think>\n", 12))
    text = "".join(d.text for d in deltas)
    assert text == server.lm.words[0] + "".join(" " + w for w in server.lm.words[1:12])
    assert deltas[-1].finish_reason == "length" or deltas[-2].finish_reason == "length"
    assert any(d.completion_tokens == 12 for d in deltas)
    await backend.close()


async def test_closing_the_stream_ends_the_request(server):
    server.token_delay = 0.02
    backend = backend_for(server.url)
    await backend.start()
    async with aclosing(backend.generate(GenerationRequest("<think>\n", 60))) as stream:
        async for d in stream:
            if d.text.strip().startswith("Tens"):
                break
    await until(lambda: server.disconnects == 1)
    assert server.tokens_sent < 30  # the server stopped decoding soon after the close
    await backend.close()


@pytest.mark.parametrize("status,error", [(500, TransientBackendError),
                                          (429, TransientBackendError),
                                          (400, RequestRejected)])
async def test_http_errors(server, status, error):
    server.fail_status = status
    backend = backend_for(server.url)
    await backend.start()
    with pytest.raises(error, match=f"HTTP {status}"):
        await collect(backend, GenerationRequest("<think>\n", 5))
    await backend.close()


async def test_dropped_stream_is_transient(server):
    server.drop_after = 3
    backend = backend_for(server.url)
    await backend.start()
    with pytest.raises(TransientBackendError):
        await collect(backend, GenerationRequest("<think>\n", 20))
    await backend.close()


@pytest.mark.parametrize("code,error", [(400, RequestRejected), (500, TransientBackendError),
                                        (None, TransientBackendError)])
async def test_an_error_event_mid_stream_is_raised_with_its_message(server, code, error):
    # llama-server's layout for a request that outgrows its slot after the first tokens
    server.error_after = (3, {"code": code, "message": "request (5000 tokens) exceeds the "
                              "available context size (4096 tokens)", "type": "exceed_context"})
    backend = backend_for(server.url)
    await backend.start()
    with pytest.raises(error, match=r"ended with an error \((400|500|None)\): request \(5000 "
                                    r"tokens\) exceeds the available context size") as caught:
        await collect(backend, GenerationRequest("<think>\n", 20))
    assert "\n" not in str(caught.value)
    await backend.close()


async def test_read_timeout_is_transient(server):
    server.hang_seconds = 1.0
    backend = backend_for(server.url, timeout=0.3)
    await backend.start()
    with pytest.raises(TransientBackendError, match="timed out"):
        await collect(backend, GenerationRequest("<think>\n", 5))
    await backend.close()


async def test_affinity_sticks_to_one_replica():
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        backend = backend_for(a.url, b.url)
        await backend.start()
        for i in range(8):
            for _ in range(3):
                await collect(backend, GenerationRequest("<think>\n", 2, affinity=f"p{i}"))
        assert len(a.requests) + len(b.requests) == 24
        assert len(a.requests) % 3 == 0 and len(b.requests) % 3 == 0
        assert a.requests and b.requests  # 8 problems spread over both
        await backend.close()


def test_request_body_fields():
    s = SamplingConfig(temperature=0.5, top_p=0.9, top_k=20, min_p=0.05,
                       extra={"repetition_penalty": 1.1})
    body = request_body("m", GenerationRequest("p", 7, s, ("</think>",), seed=3), stream=True)
    assert body | {} == body and body["top_k"] == 20 and body["min_p"] == 0.05
    assert body["seed"] == 3 and body["stop"] == ["</think>"] and body["repetition_penalty"] == 1.1
    assert body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 7


def test_pool_sized_from_concurrency():
    backend = backend_for("http://127.0.0.1:1/v1", concurrency=500)
    pool = backend.client.transport.http.client._transport._pool
    assert pool._max_connections >= 500


async def test_count_tokens_uses_server_tokenize(server):
    backend = backend_for(server.url)
    await backend.start()
    assert await backend.count_tokens("one two three") == 3
    await backend.close()
