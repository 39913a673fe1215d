"""A chat template that a server exposes (llama.cpp's `/props`), rendered the way HF renders one.

With it a `chat` / `chat-think` template works over HTTP without a local tokenizer: the GGUF's
own template comes from the server. Rendering follows transformers' `apply_chat_template`
(immutable Jinja sandbox, trim_blocks/lstrip_blocks, `raise_exception`, `strftime_now`), so the
prompt is the one the model was trained on.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tessy.errors import ConfigError


class ServedChatTemplate:
    """The part of an HF tokenizer that prompt templates use: `chat_template`, the special
    tokens, and `apply_chat_template(..., tokenize=False)`."""

    def __init__(self, chat_template: str, bos_token: str = "", eos_token: str = "") -> None:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.chat_template = chat_template
        self.bos_token, self.eos_token = bos_token, eos_token
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[loopcontrols])
        env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, indent=indent,
                                                                       ensure_ascii=False)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(chat_template)

    def apply_chat_template(self, messages: list[dict[str, str]], *, tokenize: bool = False,
                            add_generation_prompt: bool = False, **kwargs: Any) -> str:
        """The rendered conversation (text only: a served template has no tokenizer here)."""
        if tokenize:
            raise ConfigError("a served chat template renders text only (tokenize=False)")
        return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos_token, eos_token=self.eos_token, **kwargs)


def _raise(message: str) -> None:
    raise ConfigError(f"chat template: {message}")
