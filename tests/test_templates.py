"""Role prompt templates against tokenizers' own chat templates."""

from __future__ import annotations

import pytest

from tessy.errors import ConfigError
from tessy.templates import HARMONY_FINAL, from_chat_template, resolve_template

# The generation-prompt logic of Qwen3's own chat template (ChatML, thinking switch).
QWEN3_CHAT = (
    "{%- for message in messages %}{{'<|im_start|>' + message.role + '\\n' + message.content"
    " + '<|im_end|>' + '\\n'}}{%- endfor %}{%- if add_generation_prompt %}"
    "{{'<|im_start|>assistant\\n'}}{%- if enable_thinking is defined and enable_thinking is false"
    " %}{{'<think>\\n\\n</think>\\n\\n'}}{%- endif %}{%- endif %}"
)
HARMONY_CHAT = (
    "{%- for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{%- endfor %}"
    "{%- if add_generation_prompt %}<|start|>assistant{%- endif %}"
)
PLAIN_CHAT = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def with_template(tokenizer, source):
    import copy

    tok = copy.copy(tokenizer)
    tok.chat_template = source
    return tok


def test_qwen3_builtin_matches_its_chat_template(tiny_tokenizer):
    tok = with_template(tiny_tokenizer, QWEN3_CHAT)
    chat = resolve_template("auto", tokenizer=tok)
    assert chat.name == "chat"
    builtin = resolve_template("qwen3")
    assert chat.thinking_prompt("Hi?", "x") == builtin.thinking_prompt("Hi?", "x")
    assert builtin.thinking_prompt("Hi?", "").endswith("<|im_start|>assistant\n<think>\n")
    assert builtin.answer_prompt("Hi?", "x \n").endswith("x\n</think>\n\n")


def test_non_reasoning_chat_model_is_told_to_think(tiny_tokenizer):
    tok = with_template(tiny_tokenizer, PLAIN_CHAT)
    t = resolve_template("auto", tokenizer=tok)
    assert t.name == "chat-think"
    prompt = t.thinking_prompt("Hi?", "")
    assert prompt.startswith("<|im_start|>system\nThink through") and prompt.endswith("<think>\n")


def test_harmony_chat_template_opens_the_analysis_channel(tiny_tokenizer):
    tok = with_template(tiny_tokenizer, HARMONY_CHAT)
    t = from_chat_template(tok, instruct_thinking=False)
    assert t.thinking_prompt("Hi?", "").endswith("<|start|>assistant<|channel|>analysis<|message|>")
    assert "assistantfinal" in t.end_markers
    assert t.answer_prompt("Hi?", "x").endswith("x<|end|>" + HARMONY_FINAL)


def test_builtins_and_guessing():
    assert resolve_template("auto", model_name="openai/gpt-oss-120b").name == "gpt-oss"
    assert resolve_template("auto", model_name="Qwen/Qwen3-8B").name == "qwen3"
    r1 = resolve_template("auto", model_name="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
    assert r1.thinking_prompt("Q", "").endswith("<｜Assistant｜><think>\n")
    with pytest.raises(ConfigError, match="cannot guess"):
        resolve_template("auto", model_name="mystery")
    with pytest.raises(ConfigError, match="unknown template"):
        resolve_template("nope")


def test_base_model_gets_plain_template(tiny_tokenizer):
    t = resolve_template("auto", tokenizer=tiny_tokenizer)
    assert t.name == "plain-think" and t.thinking_prompt("Q", "").endswith("<think>\n")
