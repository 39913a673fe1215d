"""Next-token sampling for the local backend: temperature, top-k, top-p, min-p."""

from __future__ import annotations

from typing import Any

from tessy.config import SamplingConfig


def sample_token(logits: Any, s: SamplingConfig, generator: Any = None) -> int:
    """One token id from a 1-D logits tensor; greedy when temperature is 0."""
    import torch

    if s.temperature == 0:
        return int(torch.argmax(logits))
    logits = logits / s.temperature
    if s.top_k:
        kth = torch.topk(logits, min(s.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if s.min_p:
        probs = probs.masked_fill(probs < s.min_p * probs.max(), 0.0)
    if s.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Drop a token when the mass before it already reaches top_p (the first one always stays).
        drop = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= s.top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
