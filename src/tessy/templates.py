"""Role prompt templates: a problem becomes a raw prompt that ends exactly where thinking begins.

Each template also knows how its model ends thinking (`end_markers`), what to append after the
thinking so the model writes the final answer (`answer_bridge`), and where that answer stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tessy.errors import ConfigError

THINK_END = "</think>"
HARMONY_FINAL = "<|start|>assistant<|channel|>final<|message|>"
# GPT-OSS ends analysis with <|end|> and opens the final channel; with special tokens skipped the
# server shows that as "assistantfinal".
HARMONY_END_MARKERS = ("<|end|>", HARMONY_FINAL, "<|channel|>final", "assistantfinal")
THINK_INSTRUCTION = (
    "Think through the problem step by step inside <think> </think> tags, "
    "then give the final answer after </think>."
)
HARMONY_SYSTEM = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n\nReasoning: high\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
    "<|end|>"
)


@dataclass(frozen=True)
class PromptTemplate:
    """How one model is prompted: prefix before thinking, thinking end markers, answer bridge."""

    name: str
    render_prefix: Callable[[str], str]
    end_markers: tuple[str, ...] = (THINK_END,)
    answer_bridge: str = "\n</think>\n\n"
    answer_stop: tuple[str, ...] = ()

    def thinking_prompt(self, prompt: str, thinking: str) -> str:
        """Raw text the model continues while thinking."""
        return self.render_prefix(prompt) + thinking

    def answer_prompt(self, prompt: str, thinking: str) -> str:
        """Raw text after which the model writes its final answer."""
        return self.render_prefix(prompt) + thinking.rstrip() + self.answer_bridge


def qwen3() -> PromptTemplate:
    """Qwen3 (and QwQ) ChatML with thinking on."""
    return PromptTemplate(
        "qwen3",
        lambda p: f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n<think>\n",
        answer_stop=("<|im_end|>",),
    )


def deepseek_r1() -> PromptTemplate:
    """DeepSeek-R1 and its distills."""
    return PromptTemplate(
        "deepseek-r1",
        lambda p: f"<｜begin▁of▁sentence｜><｜User｜>{p}<｜Assistant｜><think>\n",
        answer_stop=("<｜end▁of▁sentence｜>",),
    )


def gpt_oss() -> PromptTemplate:
    """GPT-OSS harmony format; thinking is the analysis channel."""
    return PromptTemplate(
        "gpt-oss",
        lambda p: (
            f"{HARMONY_SYSTEM}<|start|>user<|message|>{p}<|end|>"
            "<|start|>assistant<|channel|>analysis<|message|>"
        ),
        end_markers=HARMONY_END_MARKERS,
        answer_bridge="<|end|>" + HARMONY_FINAL,
        answer_stop=("<|return|>", "<|end|>"),
    )


def plain_think() -> PromptTemplate:
    """For base models with no chat template: a plain-text prompt with a <think> block.

    A base model that opens a new `<think>` or `Problem:` has left the thinking: both end it.
    """
    return PromptTemplate(
        "plain-think",
        lambda p: f"Problem: {p}\n\n{THINK_INSTRUCTION}\n\n<think>\n",
        end_markers=(THINK_END, "<think>", "\nProblem:"),
        answer_bridge="\n</think>\n\nFinal answer:",
        answer_stop=("\nProblem:", "<think>"),
    )


def from_chat_template(tokenizer: Any, *, instruct_thinking: bool) -> PromptTemplate:
    """Use the tokenizer's own chat template with thinking on.

    `instruct_thinking` adds a system instruction for non-reasoning chat models (e.g. SmolLM2),
    which then think inside the `<think>` block that the template opens for them.
    """
    source = tokenizer.chat_template or ""
    harmony = "<|message|>" in source  # harmony (GPT-OSS) framing
    eos = getattr(tokenizer, "eos_token", None)

    def render(prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        if instruct_thinking:
            messages.insert(0, {"role": "system", "content": THINK_INSTRUCTION})
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=True
        )
        if harmony:
            opener = "<|channel|>analysis<|message|>"
            return text if text.endswith(opener) else text + opener
        if text.rstrip().endswith("<think>"):
            return text.rstrip() + "\n"
        return text + "<think>\n"

    # Rendered once per problem, not once per turn: a switch re-renders nothing, and a template
    # that prints the date keeps one prefix over a trajectory (its server's prefix cache too).
    render = lru_cache(maxsize=4096)(render)
    name = "chat-think" if instruct_thinking else "chat"
    stop = (eos,) if eos else ()
    if harmony:
        return PromptTemplate(
            name, render, HARMONY_END_MARKERS, "<|end|>" + HARMONY_FINAL, ("<|return|>", "<|end|>")
        )
    return PromptTemplate(name, render, answer_stop=stop)


BUILTIN = {"qwen3": qwen3, "deepseek-r1": deepseek_r1, "gpt-oss": gpt_oss, "plain-think": plain_think}
NAMES = ("auto", "chat", "chat-think", *BUILTIN)


def resolve_template(
    spec: str, *, tokenizer: Any = None, model_name: str | None = None, where: str = "template"
) -> PromptTemplate:
    """Turn a template name into a PromptTemplate, guessing from the model when `auto`."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if spec in ("chat", "chat-think"):
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            flag = where.replace("-template", "-tokenizer")
            raise ConfigError(f"{where}: {spec!r} needs the model's chat template, and the server "
                              f"exposes none: give {flag} (an HF tokenizer dir or hub id)")
        return from_chat_template(tokenizer, instruct_thinking=spec == "chat-think")
    if spec != "auto":
        raise ConfigError(f"{where}: unknown template {spec!r}; choose from {', '.join(NAMES)}")
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        source = tokenizer.chat_template
        reasoning = "<think>" in source or "enable_thinking" in source or "<|message|>" in source
        return from_chat_template(tokenizer, instruct_thinking=not reasoning)
    if tokenizer is not None:
        return plain_think()
    lowered = (model_name or "").lower()
    for key, names in (("gpt-oss", ("gpt-oss",)), ("deepseek-r1", ("deepseek-r1", "r1-distill")),
                       ("qwen3", ("qwen3", "qwq"))):
        if any(n in lowered for n in names):
            return BUILTIN[key]()
    raise ConfigError(
        f"{where}: cannot guess a template for model {model_name!r}; pass one of {', '.join(NAMES)}"
        " or a tokenizer"
    )
