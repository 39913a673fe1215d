"""The one client of OpenAI-compatible servers: both stream paths, retries, scoring, served templates."""

from __future__ import annotations

import pytest

from tessy.errors import BackendError
from tessy.openai_api import OpenAIClient, RetryPolicy
from tessy.records import parse_record
from tessy.report.nll import NLL, HTTPScorer
from tessy.templates import qwen3
from tessy.transport import Transport


def test_streams_take_httpx_only_through_a_proxy(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert not OpenAIClient(["http://gpu-node:8000/v1"]).transport.fast  # proxied: httpx speaks to it
    assert OpenAIClient(["http://localhost:8000/v1"]).transport.fast  # bypassed: fast path
    monkeypatch.delenv("NO_PROXY")
    assert OpenAIClient(["http://127.0.0.1:8000/v1"]).transport.fast  # loopback: never proxied
    monkeypatch.delenv("HTTP_PROXY")
    assert OpenAIClient(["http://gpu-node:8000/v1"]).transport.fast


@pytest.mark.parametrize("fast", [True, False])
async def test_both_stream_paths_read_the_same_chunks(server, fast):
    body = b'{"model": "m", "prompt": "<think>\\n", "max_tokens": 6, "stream": true}'
    async with OpenAIClient([server.url]) as client:
        await client.transport.aclose()  # one on the path asked for (httpx: as behind a proxy)
        client.transport = Transport([server.url], size=8, timeout=30.0, fast=fast)
        batches = [b async for b in client.stream_completion(server.url, body)]
    chunks = [c for b in batches for c in b]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == \
        server.lm.words[0] + "".join(" " + w for w in server.lm.words[1:6])
    assert chunks[-1]["usage"]["completion_tokens"] == 6


async def test_chat_retries_transient_failures_then_gives_up(server):
    server.chat_reply = lambda message: f"echo {message}"
    async with OpenAIClient([server.url], retry=RetryPolicy(retries=2, backoff=0.0)) as client:
        assert await client.chat([{"role": "user", "content": "hi"}], "m") == "echo hi"
        server.fail_status = 503
        before = len(server.requests)
        with pytest.raises(BackendError, match="gave up after 3 tries: .*HTTP 503"):
            await client.chat([{"role": "user", "content": "hi"}], "m")
        assert len(server.requests) - before == 3
        server.fail_status = 400  # a rejected request is never retried
        before = len(server.requests)
        with pytest.raises(BackendError, match="HTTP 400"):
            await client.chat([{"role": "user", "content": "hi"}], "m")
        assert len(server.requests) - before == 1


async def test_http_scorer_attributes_prompt_logprobs_to_spans(server):
    record = {"id": "a", "dialogs": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nOkay so. Two and two.\n</think>\n\nFour."}],
        "tessy": {"segments": [{"role": "student", "text": "Okay so.", "n_tokens": 2},
                               {"role": "teacher", "text": " Two and two.", "n_tokens": 3}],
                  "answer": {"role": "student", "text": "Four.", "n_tokens": 1}}}
    nll = NLL()
    async with OpenAIClient([server.url]) as client:
        await HTTPScorer(client, "m", qwen3()).score([parse_record(record, "r:1")], nll)
    # The fake server scores one token per word at logprob -1.
    assert nll.tokens == {"student": 2, "teacher": 3, "answer": 1}
    assert nll.per_token()["all"] == pytest.approx(1.0)


async def test_served_chat_template_where_the_server_exposes_one(server):
    async with OpenAIClient([server.url]) as client:
        assert await client.served_chat_template() is None
        server.props = {"chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>"
                        "{{ m.content }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}",
                        "bos_token": "<s>", "eos_token": "</s>"}
        served = await client.served_chat_template()
    assert served == {"chat_template": server.props["chat_template"], "bos_token": "<s>",
                      "eos_token": "</s>"}
