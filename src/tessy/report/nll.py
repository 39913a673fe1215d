"""The student's negative log-likelihood of each dataset's assistant text, split by who wrote it.

The direct measure of on-policy-ness: text the student would write itself has low NLL under the
student. Each scored token is attributed to the span (student, teacher, unknown, answer) where
it starts; tokens of the `<think>` markup belong to none.

Two scorers: `LocalScorer` (transformers, batched forward passes) and `HTTPScorer` (an
OpenAI-compatible server that echoes prompt logprobs: vLLM). Not llama.cpp: its server returns
no prompt logprobs (ggml-org/llama.cpp#27174), and llama-cpp-python's are shifted by one token
(abetlen/llama-cpp-python#1983; seen here with 0.3.36).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tessy.openai_api import OpenAIClient
from tessy.records import THINK_OPEN, Sample
from tessy.templates import PromptTemplate


@dataclass
class NLL:
    """Summed NLL and token counts per origin."""

    total: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)

    def add(self, origin: str, nll: float) -> None:
        self.total[origin] = self.total.get(origin, 0.0) + nll
        self.tokens[origin] = self.tokens.get(origin, 0) + 1

    def per_token(self) -> dict[str, float]:
        """Mean NLL per token by origin, plus `all` over every scored token."""
        out = {o: self.total[o] / self.tokens[o] for o in sorted(self.total)}
        n = sum(self.tokens.values())
        if n:
            out["all"] = sum(self.total.values()) / n
        return out


def scoring_text(sample: Sample, template: PromptTemplate) -> tuple[str, int]:
    """(full text, where the scored assistant part starts in it), in the student's template.

    The template's prefix already opens the thinking, so the assistant's own opener is dropped.
    """
    prefix = template.render_prefix(sample.prompt)
    assistant = sample.assistant
    if prefix.endswith(THINK_OPEN) and assistant.startswith(THINK_OPEN):
        prefix = prefix[: -len(THINK_OPEN)]
    return prefix + assistant, len(prefix)


def attribute(sample: Sample, offset: int, token_spans: Iterable[tuple[int, int, float]], nll: NLL):
    """Add each (start, end, logprob) token of the full text to the origin of its first char."""
    spans = sorted(sample.spans, key=lambda s: s.start)
    starts = [s.start for s in spans]  # spans do not overlap: bisect finds the only candidate
    text = sample.assistant
    for start, _end, logprob in token_spans:
        pos = start - offset
        if pos < 0:
            continue
        # The token's first non-space character decides (tokens often start with a space).
        while pos < len(text) and text[pos].isspace():
            pos += 1
        i = bisect_right(starts, pos) - 1
        if i >= 0 and pos < spans[i].end:
            nll.add(spans[i].origin, -logprob)


class Scorer(Protocol):
    """Scores samples under the student, adding each token's NLL to its origin."""

    async def score(self, samples: list[Sample], nll: NLL, progress: Any = None) -> None:
        """Score `samples` into `nll`; `progress.update(n)` after every n samples."""
        ...


class LocalScorer:
    """Batched forward passes of a transformers causal LM (in a worker thread)."""

    def __init__(self, model: Any, tokenizer: Any, template: PromptTemplate,
                 batch_size: int = 4, max_tokens: int = 4096) -> None:
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.batch_size, self.max_tokens = batch_size, max_tokens

    async def score(self, samples: list[Sample], nll: NLL, progress: Any = None) -> None:
        """Score `samples` in batches of `batch_size`."""
        for i in range(0, len(samples), self.batch_size):
            batch = samples[i:i + self.batch_size]
            await asyncio.to_thread(self._score_batch, batch, nll)
            if progress is not None:
                progress.update(len(batch))

    def _score_batch(self, batch: list[Sample], nll: NLL) -> None:
        import torch

        texts = [scoring_text(s, self.template) for s in batch]
        enc = self.tokenizer([t for t, _ in texts], return_offsets_mapping=True,
                             add_special_tokens=True, padding=True, truncation=True,
                             max_length=self.max_tokens, return_tensors="pt")
        offsets = enc.pop("offset_mapping")
        with torch.inference_mode():
            logits = self.model(**{k: v.to(self.model.device) for k, v in enc.items()}).logits
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = enc["input_ids"][:, 1:].to(logprobs.device)
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
        mask = enc["attention_mask"][:, 1:].bool() & enc["attention_mask"][:, :-1].bool()
        for row, (sample, (_, offset)) in enumerate(zip(batch, texts, strict=True)):
            tokens = [(int(offsets[row, j + 1, 0]), int(offsets[row, j + 1, 1]),
                       float(picked[row, j])) for j in range(picked.shape[1]) if mask[row, j]]
            attribute(sample, offset, tokens, nll)


class HTTPScorer:
    """A server that echoes prompt logprobs (vLLM) scores the text, through `OpenAIClient`."""

    def __init__(self, client: OpenAIClient, model: str, template: PromptTemplate,
                 concurrency: int = 8) -> None:
        self.client, self.model, self.template = client, model, template
        self.concurrency = concurrency

    async def score(self, samples: list[Sample], nll: NLL, progress: Any = None) -> None:
        """Score `samples`, `concurrency` requests at a time."""
        limit = asyncio.Semaphore(self.concurrency)

        async def one(sample: Sample) -> None:
            text, offset = scoring_text(sample, self.template)
            async with limit:
                tokens = await self.client.prompt_logprobs(text, self.model)
            attribute(sample, offset, tokens, nll)
            if progress is not None:
                progress.update(1)

        await asyncio.gather(*(one(s) for s in samples))
