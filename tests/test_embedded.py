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


def test_embedded_default_writes_cooperative_records(tmp_path, capsys):
    out = tmp_path / "demo.jsonl"
    code = main(["synthesize", "-q", "-o", str(out), "--limit", "2",
                 "--max-thinking-tokens", "48", "--max-answer-tokens", "12"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        t = row["tessy"]
        models = t["models"]  # named by what they are, never by a path of this machine
        assert "gemma-3-270m" in models["teacher"] and "SmolLM2-135M" in models["student"]
        assert not any(m.startswith("/") or ".gguf" in m for m in models.values())
        assert t["segments"][0]["role"] == "student"
        assert sum(t["tokens"].values()) <= 48 + 2  # a straddling token per turn at most
        assert row["dialogs"][1]["content"].startswith("<think>\n")
    assert any({s["role"] for s in r["tessy"]["segments"]} == {"student", "teacher"} for r in rows)
