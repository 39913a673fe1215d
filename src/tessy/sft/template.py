"""Does the student's chat template keep what we train on?

Templates differ in what they do with reasoning in an assistant turn: SmolLM2's copies the
content verbatim; Qwen3's re-renders the final turn's `<think>` block (and drops it from turns
before the last user message); DeepSeek-R1-distill's drops it always. Training through a template
that drops it would silently teach the student to answer without thinking, so a probe example
is rendered before anything loads, and every tokenized example is checked again before training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tessy.errors import ConfigError
from tessy.sft.examples import Example

PROBE = Example("probe", "probe", "What is 6 times 7?", "Six sevens: 42. Check: 42 / 6 = 7.",
                "Answer: 42")


def instructs_thinking(tokenizer: Any, template: str) -> bool:
    """Whether prompts carry the think-in-<think> system instruction: `chat-think` always, `auto`
    when the chat template knows no thinking (the rule `synthesize --student-template auto`
    follows), `chat` never."""
    if template != "auto":
        return template == "chat-think"
    source = tokenizer.chat_template or ""
    return not ("<think>" in source or "enable_thinking" in source)


def use_chat_template(tokenizer: Any, path: str | None, model: str) -> None:
    """Put the template of `path` on the tokenizer; fail when it ends up with none."""
    if path:
        try:
            tokenizer.chat_template = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--chat-template: cannot read {path}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"--model {model}: the tokenizer has no chat template; give "
                          "--chat-template FILE (a Jinja chat template)")


def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    """The template's text of `messages`."""
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def check_template(tokenizer: Any, instruct: bool, model: str) -> None:
    """Raise when the template cannot hold a `<think>` block in the trained assistant turn, or
    renders the prompt differently once the answer follows (the loss mask would be wrong)."""
    row = PROBE.conversation(instruct, 0)
    try:
        prompt = render(tokenizer, row["prompt"], True)
        full = render(tokenizer, row["prompt"] + row["completion"], False)
    except Exception as exc:  # jinja2 raises TemplateError subclasses and plain exceptions
        raise ConfigError(f"--model {model}: its chat template fails on a plain chat: "
                          f"{exc}") from exc
    where = f"--model {model}: its chat template"
    if not full.startswith(prompt):
        raise ConfigError(f"{where} renders the prompt differently when an assistant turn "
                          "follows, so the loss cannot be limited to that turn; give "
                          "--chat-template FILE")
    trained = full[len(prompt):]
    if "<think>" not in trained or PROBE.thinking not in trained:
        raise ConfigError(f"{where} drops the <think> block from assistant turns; give "
                          "--chat-template FILE with one that keeps it")
    if PROBE.answer not in trained:
        raise ConfigError(f"{where} drops the answer after </think>; give --chat-template FILE")
