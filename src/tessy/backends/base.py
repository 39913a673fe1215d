"""The one thing tessy asks of a model: continue this raw text, streaming, and stop when told."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tessy.config import SamplingConfig


@dataclass(frozen=True)
class GenerationRequest:
    """Continue `prompt` for at most `max_tokens` tokens; `affinity` keys replica and KV cache."""

    prompt: str
    max_tokens: int
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    stop: tuple[str, ...] = ()
    affinity: str = ""
    seed: int | None = None


@dataclass(slots=True)  # one per socket read: cheap to make
class Delta:
    """A piece of generated text. The last piece of a request carries `finish_reason`.

    `n_tokens` counts the tokens behind `text`; `token_chars`, where known, their lengths (a piece
    merged from several streamed tokens); the last piece may carry server-reported usage.
    """

    text: str
    n_tokens: int = 0
    finish_reason: str | None = None  # "stop" (EOS or stop string) or "length"
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    token_chars: list[int] | None = None


@dataclass
class BackendCounters:
    """What a backend sent and had computed in a run (run summary, benchmarks)."""

    requests: int = 0
    bytes_sent: int = 0  # request bodies (HTTP backends)
    prompt_tokens: int = 0  # as the model or server counted them, where known
    cached_prompt_tokens: int = 0  # of those, found in a prefix/KV cache, where reported
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)  # per server URL (HTTP)


class Backend(Protocol):
    """A model behind tessy. Closing the iterator of `generate` must end the request."""

    name: str
    tokenizer: Any  # an HF tokenizer when one is known (chat templates), else None
    counters: BackendCounters

    async def start(self) -> None:
        """Load the model or probe the server; raise a one-line error if it is not usable."""

    def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream the continuation of `request.prompt`."""

    async def count_tokens(self, text: str) -> int | None:
        """Tokens of `text` in this model's tokenizer, or None where nothing can count them."""

    async def close(self) -> None:
        """Release connections and memory."""
