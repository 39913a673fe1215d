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

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tessy.errors import BackendError
from tessy.report.dataset import THINK_OPEN, Sample
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


class LocalScorer:
    """Batched forward passes of a transformers causal LM."""

    def __init__(self, model: Any, tokenizer: Any, template: PromptTemplate,
                 batch_size: int = 4, max_tokens: int = 4096) -> None:
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.batch_size, self.max_tokens = batch_size, max_tokens

    def score(self, samples: list[Sample], nll: NLL, progress=None) -> None:
        import torch

        for i in range(0, len(samples), self.batch_size):
            batch = samples[i:i + self.batch_size]
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
            if progress is not None:
                progress.update(len(batch))


class HTTPScorer:
    """`/v1/completions` with `echo` and `logprobs`: the server scores the prompt it is sent."""

    def __init__(self, base_url: str, model: str, template: PromptTemplate,
                 api_key: str | None = None, concurrency: int = 8) -> None:
        self.url = base_url.rstrip("/")
        self.model, self.template = model, template
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.concurrency = concurrency

    async def _score_one(self, client, sample: Sample, nll: NLL) -> None:
        text, offset = scoring_text(sample, self.template)
        body = {"model": self.model, "prompt": text, "max_tokens": 1, "echo": True,
                "logprobs": 1, "temperature": 0}
        response = await client.post(f"{self.url}/completions", json=body, headers=self.headers)
        if response.status_code != 200:
            raise BackendError(f"{self.url}/completions: HTTP {response.status_code}: "
                               f"{response.text[:200]}")
        data = response.json()
        lp = data["choices"][0].get("logprobs") or {}
        starts, values = lp.get("text_offset") or [], lp.get("token_logprobs") or []
        prompt_tokens = (data.get("usage") or {}).get("prompt_tokens") or 1
        if len(starts) < prompt_tokens:  # llama.cpp's own server: the generated token only
            raise BackendError(f"{self.url}: the server returned no prompt logprobs "
                               "(needs `echo` + `logprobs` over the prompt, as vLLM does)")
        ends = [*starts[1:], len(text)]
        tokens = [(s, e, v) for s, e, v in zip(starts, ends, values, strict=False)
                  if v is not None and s < len(text)]
        attribute(sample, offset, tokens, nll)

    def score(self, samples: list[Sample], nll: NLL, progress=None) -> None:
        import asyncio

        import httpx

        async def run():
            limit = asyncio.Semaphore(self.concurrency)
            async with httpx.AsyncClient(timeout=600) as client:
                async def one(sample):
                    async with limit:
                        await self._score_one(client, sample, nll)
                    if progress is not None:
                        progress.update(1)
                await asyncio.gather(*(one(s) for s in samples))

        asyncio.run(run())
