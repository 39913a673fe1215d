"""Integration: the embedded default on the real small models (slow: loads two GGUF models)."""

from __future__ import annotations

import json

import pytest

from tessy.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_smollm2_chat_template_gets_think_instruction():
    from tessy.backends.loading import load_tokenizer
    from tessy.embedded import smollm2_gguf
    from tessy.templates import resolve_template

    tok = load_tokenizer(str(smollm2_gguf()))
    t = resolve_template("auto", tokenizer=tok)
    own = tok.apply_chat_template([{"role": "user", "content": "Hi?"}], tokenize=False,
                                  add_generation_prompt=True)
    assert t.name == "chat-think"
    assert t.thinking_prompt("Hi?", "").endswith(own.split("<|im_start|>user")[1] + "<think>\n")


def test_embedded_default_writes_graded_records(tmp_path, capsys):
    out = tmp_path / "demo.jsonl"
    code = main(["synthesize", "-q", "-o", str(out), "--limit", "3"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "its 3 records: teacher share" in stdout and "accuracy " in stdout
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        t = row["tessy"]
        assert t["models"] == {"teacher": "Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
                               "student": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)"}
        assert sum(t["tokens"].values()) <= 384 + 2 * t["switches"] + 2  # the budget, give or take
        assert row["dialogs"][1]["content"].startswith("<think>\n")
        assert t["answer"]["text"]  # read from the thinking, or written after it
