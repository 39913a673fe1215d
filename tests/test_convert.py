"""`tessy sft --gguf`: the fine-tuned student written by llama.cpp's own converter, served by the
llama-server `tessy setup` built, and decoding as the saved HF model does (slow: real SmolLM2)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from helpers import write_jsonl  # noqa: E402
from tessy import aio  # noqa: E402
from tessy.cli import main  # noqa: E402
from tessy.errors import ConfigError  # noqa: E402
from tessy.serving.convert import to_gguf  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
PROMPT = "The capital of France is"


def rows(n: int) -> list[dict]:
    return [{"id": f"p{i}", "prompt": f"What is {i} + 2?", "dialogs": [
        {"role": "user", "content": f"What is {i} + 2?"},
        {"role": "assistant", "content": f"<think>\n{i} plus 2 is {i + 2}.\n</think>\n\n{i + 2}"}]}
        for i in range(n)]


def hf_greedy(model_dir: Path, tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


async def served_greedy(gguf: Path, tokens: int) -> str:
    import httpx

    from tessy.serving.llama_server import LlamaServer

    server = LlamaServer(gguf, context=512)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(f"{server.url}/completions", json={
                "prompt": PROMPT, "max_tokens": tokens, "temperature": 0})
            return r.json()["choices"][0]["text"]
    finally:
        await server.stop()


def test_sft_gguf_is_served_and_decodes_as_the_hf_model(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", rows(4))
    out = tmp_path / "student"
    assert main(["sft", str(data), "-o", str(out), "--model", "smollm2", "--epochs", "1",
                 "--batch-size", "2", "--micro-batch", "2", "--max-length", "128", "--gguf",
                 "-q"]) == 0
    assert (out / "model.gguf").stat().st_size > 200_000_000  # f16 of 135M parameters
    assert not list(out.glob("*.partial"))
    assert aio.run(served_greedy(out / "model.gguf", 8)) == hf_greedy(out, 8)


def test_a_model_the_converter_cannot_read_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["NoSuchModelForCausalLM"]}')
    with pytest.raises(ConfigError) as caught:
        to_gguf(tmp_path, tmp_path / "model.gguf")
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "model.gguf").exists() and not (tmp_path / "model.gguf.partial").exists()
