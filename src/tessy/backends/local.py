"""In-process HF transformers models (CPU, or GPU when present).

Each problem keeps its own KV cache. A new request whose prompt extends the cached tokens (the
longest common token prefix) only prefills what is new, so when the roles switch, a model reads
the other role's span and not the whole trace again.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from tessy.backends.base import BackendCounters, Delta, GenerationRequest
from tessy.backends.loading import load_causal_lm
from tessy.backends.naming import model_name
from tessy.backends.sampling import sample_token
from tessy.config import RoleConfig
from tessy.errors import RequestRejected


@dataclass
class _CacheEntry:
    ids: list[int]  # tokens whose keys and values are in `cache`
    cache: Any


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def cache_argument(model: Any) -> str:
    """The name of the KV-cache argument of `model.forward`: transformers 5 renamed
    `past_key_values` to `cache` (and warns on every call that uses the old name)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class LocalBackend:
    """A transformers causal LM; `reuse_cache=False` re-prefills every request (for tests)."""

    def __init__(self, config: RoleConfig, *, reuse_cache: bool = True, max_cached: int = 256,
                 model: Any = None, tokenizer: Any = None) -> None:
        self.config = config
        self.name = model_name(config.model)  # what it is, not where it lies
        self.model, self.tokenizer = model, tokenizer
        self.reuse_cache = reuse_cache
        self.max_cached = max_cached
        self.caches: OrderedDict[str, _CacheEntry] = OrderedDict()
        self.counters = BackendCounters()  # cached_prompt_tokens: reused from a problem's KV cache
        self._lock = threading.Lock()  # one forward at a time; torch parallelises inside it
        self._cache_arg: str | None = None  # found on the first forward

    async def start(self) -> None:
        """Load the model (converting a GGUF file once)."""
        if self.model is None:
            self.model, self.tokenizer = await asyncio.to_thread(
                load_causal_lm, str(self.config.model), self.config.device
            )

    async def close(self) -> None:
        """Drop the KV caches."""
        self.caches.clear()

    async def count_tokens(self, text: str) -> int:
        """Tokens of `text` in this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def context_length(self) -> int:
        """Most positions the model takes (prompt + output)."""
        return int(getattr(self.model.config, "max_position_embeddings", None) or 1 << 30)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Prompt ids, with BOS added unless the template already wrote it."""
        bos = self.tokenizer.bos_token
        add = not (bos and prompt.startswith(bos))
        ids: list[int] = self.tokenizer(prompt, add_special_tokens=add)["input_ids"]
        return ids

    def _take_cache(self, affinity: str, ids: list[int]) -> _CacheEntry:
        """The problem's cache rolled back to the common prefix with `ids`, or a fresh one."""
        from transformers import DynamicCache

        entry = self.caches.pop(affinity, None) if affinity else None
        if entry is not None and self.reuse_cache:
            keep = min(common_prefix(entry.ids, ids), len(ids) - 1)  # always feed >= 1 token
            drop = len(entry.ids) - keep
            try:
                if keep > 0:
                    if drop:
                        entry.cache.crop(-drop)
                    return _CacheEntry(entry.ids[:keep], entry.cache)
            except (ValueError, RuntimeError):
                pass  # e.g. a sliding-window layer past its window cannot roll back: re-prefill
        return _CacheEntry([], DynamicCache(config=self.model.config))

    def _forward(self, entry: _CacheEntry, new_ids: list[int]) -> Any:
        import torch

        if self._cache_arg is None:
            self._cache_arg = cache_argument(self.model)
        with self._lock, torch.inference_mode():
            x = torch.tensor([new_ids], device=self.model.device)
            out = self.model(input_ids=x, use_cache=True, **{self._cache_arg: entry.cache})
        entry.ids.extend(new_ids)
        return out.logits[0, -1].float()

    def _store(self, affinity: str, entry: _CacheEntry) -> None:
        if not affinity or not self.reuse_cache:
            return
        self.caches[affinity] = entry
        while len(self.caches) > self.max_cached:
            self.caches.popitem(last=False)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Decode token by token in a worker thread; stop on EOS, a stop string or max_tokens."""
        import torch

        ids = self.encode_prompt(request.prompt)
        room = self.context_length() - len(ids)
        if room <= 0:  # what a server answers with HTTP 400: this problem cannot go on
            raise RequestRejected(f"{self.name}: prompt of {len(ids)} tokens does not fit the "
                                  f"model's context of {self.context_length()} tokens")
        max_tokens = min(request.max_tokens, room)
        entry = self._take_cache(request.affinity, ids)
        pending = ids[len(entry.ids):]
        self.counters.requests += 1
        self.counters.prompt_tokens += len(ids)
        self.counters.cached_prompt_tokens += len(entry.ids)
        generator = None
        if request.seed is not None:
            generator = torch.Generator().manual_seed(request.seed)
        eos = set(_eos_ids(self.tokenizer, self.model))
        out: list[int] = []
        emitted, text = "", ""
        counted = 0  # tokens already reported in a Delta
        window = (0, 0)  # incremental detokenization: decode only the last few tokens
        finish = "length"
        try:
            while len(out) < max_tokens:
                logits = await asyncio.to_thread(self._forward, entry, pending)
                token = sample_token(logits, request.sampling, generator)
                if token in eos:
                    finish = "stop"
                    break
                out.append(token)
                pending = [token]
                new, window = self._detokenize(out, window)
                if not new:
                    continue  # half of a multi-byte character: wait for the rest
                text += new
                piece, stopped = _cut_at_stop(text, emitted, request.stop)
                emitted += piece
                if piece or stopped:
                    yield Delta(piece, len(out) - counted, "stop" if stopped else None)
                    counted = len(out)
                if stopped:
                    return
            rest = text[len(emitted):]  # held back as a possible stop string that never came
            yield Delta(rest, len(out) - counted, finish, completion_tokens=len(out))
        finally:
            self._store(request.affinity, entry)

    def _detokenize(self, ids: list[int], window: tuple[int, int]) -> tuple[str, tuple[int, int]]:
        """Text the newest tokens add, decoding from a window start so that a word's leading
        space survives (and a half character waits): O(1) per token, not the whole output."""
        prefix, read = window
        before = self.tokenizer.decode(ids[prefix:read], skip_special_tokens=True)
        after = self.tokenizer.decode(ids[prefix:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            return after[len(before):], (read, len(ids))
        return "", window


def _cut_at_stop(text: str, emitted: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The new piece of `text` after `emitted`, ending before any stop string.

    A tail that could be the start of a stop string is held back until it is decided, so
    `<think` is never emitted before a `>` that completes the stop `<think>`.
    """
    hits = [text.find(s, max(0, len(emitted) - len(s))) for s in stop]
    hits = [h for h in hits if h >= 0]
    if hits:
        return text[len(emitted):min(hits)], True
    hold = max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[len(emitted):max(len(emitted), len(text) - hold)], False


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config else None
    ids = ids if isinstance(ids, list) else [ids]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return [i for i in ids if i is not None]
