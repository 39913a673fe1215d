"""The local transformers backend on a tiny model built from a config."""

from __future__ import annotations

import random
from contextlib import aclosing

import pytest

from tessy.backends.base import GenerationRequest
from tessy.backends.local import LocalBackend, common_prefix
from tessy.config import RoleConfig, SamplingConfig

GREEDY = SamplingConfig(temperature=0)


def make(model, tokenizer, reuse: bool) -> LocalBackend:
    return LocalBackend(RoleConfig(role="student", backend="local", model="tiny"),
                        reuse_cache=reuse, model=model, tokenizer=tokenizer)


async def run(backend, prompt, n, affinity="p1", stop_after=None):
    text = ""
    async with aclosing(backend.generate(GenerationRequest(prompt, n, GREEDY, (), affinity))) as s:
        async for d in s:
            text += d.text
            if stop_after and len(text.split()) >= stop_after:
                break
    return text


async def conversation(backend):
    """Two roles alternating on one trace, as the engine does: prompts extend each other."""
    trace, outputs = "", []
    for turn in range(4):
        prompt = "what is the sum of two and three ? " + trace
        out = await run(backend, prompt, 6, stop_after=3 if turn % 2 else None)
        outputs.append(out)
        trace += out + " okay so"
    return outputs


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


async def test_kv_reuse_gives_the_same_tokens(tiny_model, tiny_tokenizer):
    fresh = make(tiny_model, tiny_tokenizer, reuse=False)
    reuse = make(tiny_model, tiny_tokenizer, reuse=True)
    assert await conversation(reuse) == await conversation(fresh)
    assert fresh.counters.cached_prompt_tokens == 0
    assert reuse.counters.prompt_tokens == fresh.counters.prompt_tokens
    assert reuse.counters.cached_prompt_tokens > fresh.counters.prompt_tokens / 2


async def test_stop_strings_and_max_tokens(tiny_model, tiny_tokenizer):
    backend = make(tiny_model, tiny_tokenizer, reuse=True)
    full = await run(backend, "the answer is", 8, affinity="")
    assert 0 < len(full.split()) <= 8
    word = full.split()[2]
    deltas = []
    req = GenerationRequest("the answer is", 8, GREEDY, (word,))
    async with aclosing(backend.generate(req)) as s:
        async for d in s:
            deltas.append(d)
    assert deltas[-1].finish_reason == "stop"
    assert word not in "".join(d.text for d in deltas).split()[2:3]


async def test_sampling_seed_is_reproducible(tiny_model, tiny_tokenizer):
    backend = make(tiny_model, tiny_tokenizer, reuse=False)
    s = SamplingConfig(temperature=1.0, top_p=0.9, top_k=10, min_p=0.01)
    outs = []
    for _ in range(2):
        text = ""
        async with aclosing(backend.generate(GenerationRequest("the", 10, s, (), "", 7))) as g:
            async for d in g:
                text += d.text
        outs.append(text)
    assert outs[0] == outs[1]


async def test_prompt_longer_than_the_context_is_rejected(tiny_model, tiny_tokenizer):
    import pytest

    from tessy.errors import RequestRejected

    backend = make(tiny_model, tiny_tokenizer, reuse=True)
    with pytest.raises(RequestRejected, match="does not fit the model's context of 512"):
        await run(backend, "two " * 600, 4)
    request = GenerationRequest("two " * 505, 50, GREEDY)
    room = 512 - len(backend.encode_prompt(request.prompt))
    deltas = [d async for d in backend.generate(request)]
    assert sum(d.n_tokens for d in deltas) <= room < 50 and deltas[-1].finish_reason == "length"


def test_a_possible_stop_string_is_held_back_until_decided():
    from tessy.backends.local import _cut_at_stop

    assert _cut_at_stop("so 42 <thi", "", ("<think>",)) == ("so 42 ", False)
    assert _cut_at_stop("so 42 <think>", "so 42 ", ("<think>",)) == ("", True)
    assert _cut_at_stop("so 42 <thing", "so 42 ", ("<think>",)) == ("<thing", False)


@pytest.mark.slow
def test_incremental_detokenization_matches_decoding_everything():
    from tessy.backends.loading import load_tokenizer
    from tessy.embedded import smollm2_gguf

    tokenizer = load_tokenizer(str(smollm2_gguf()))
    backend = LocalBackend(RoleConfig(backend="local", model="x"), model=object(),
                           tokenizer=tokenizer)
    text = "Okay, let's see: 17 + 25 = 42. Héllo wörld 你好 🙂\n  indented\tand tabbed"
    rng = random.Random(0)
    for ids in (tokenizer(text, add_special_tokens=False)["input_ids"],
                [rng.randrange(tokenizer.vocab_size) for _ in range(300)]):
        out, got, window = [], "", (0, 0)
        for token in ids:
            out.append(token)
            new, window = backend._detokenize(out, window)
            got += new
        assert got == tokenizer.decode(ids, skip_special_tokens=True)
