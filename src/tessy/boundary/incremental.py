"""Incremental classifier inference: one KV cache per trajectory and role, not a window per call.

The windowed path (classifier.py) re-reads the last `window` tokens at every call, about
window / every forwards per kept token. A session keeps the classifier's KV cache over the
trajectory's thinking and runs only the tokens that arrived since its last call:

* extend: new tokens go through the model with the cache as past (one forward per token);
* crop: text the cache covers that the trajectory no longer has (decoded past a cut, then
  discarded) is dropped back to the last word end both still share, and read again from there;
* re-anchor: when the cache would hold more than `window + reanchor` tokens (or has nothing left
  in common with the text), it is rebuilt from the last `window` tokens, exactly as the windowed
  path reads them. Every label is read with between `window` and `window + reanchor` tokens of
  context (fewer only near the start of the thinking, as in the windowed path).

Cost per kept token: 1 forward for the role's own tokens, plus what the session catches up on
when its role's turn starts: the other role's last turn, or `window` tokens if that turn was
longer. Calls of concurrent sessions run as one forward: their caches are left-padded into one
past, their new tokens right-padded after it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tessy.boundary.base import CONTEXT_CHARS

if TYPE_CHECKING:
    from tessy.boundary.classifier import TokenClassifierPredictor

Spans = list[tuple[int, int]]


def text_slice(before: str, text: str, a: int, b: int) -> str:
    """(before + text)[a:b] without joining the whole of both."""
    n = len(before)
    if b <= n:
        return before[a:b]
    if a >= n:
        return text[a - n:b - n]
    return before[a:] + text[:b - n]


def shared_prefix(a: str, b: str) -> int:
    """Length of the common prefix of a and b (binary search on C-level comparisons)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # a[:lo] == b[:lo] holds; a[:hi] != b[:hi]
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Step:
    """One session's share of a batched forward: keep `past` cached tokens, run `ids` after them."""

    session: ClassifierSession
    past: int
    ids: list[int]
    ends: list[int]  # absolute char end of each new token
    origin: int  # where the session's tokens start after this step (changes on re-anchor)
    covered: str  # the text from `origin` to the last token's end after this step


@dataclass
class ClassifierSession:
    """The classifier's view of one trajectory's thinking, for one role."""

    owner: TokenClassifierPredictor
    origin: int = 0  # absolute char offset of the first cached token
    covered: str = ""  # text from `origin` to the end of the last cached token
    ids: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # absolute char end of each cached token
    flags: list[bool] = field(default_factory=list)  # raw prediction at each cached token
    kv: list[tuple[Any, Any]] = field(default_factory=list)  # per layer (keys, values), batch 1
    reanchors: int = 0

    async def label(self, before: str, text: str, start: int, end: int, spans: Spans) -> list[bool]:
        """Style labels of the words `spans` (offsets into text[start:end]) of a turn that
        continues the thinking `before`; batched with other sessions' calls."""
        labels: list[bool] = await self.owner.session_batcher.submit(
            (self, before, text, start, end, spans))
        return labels

    def plan(self, before: str, text: str, start: int, end: int, first_word: int) -> Step:
        """What to run so the cache covers the thinking up to `end` of the turn: an extension
        of the cached tokens where they still match, else a re-anchor."""
        n = len(before)
        abs_end, abs_first = n + end, n + start + first_word
        keep = self._still_valid(before, text, abs_end)
        limit = self.owner.meta.window + self.owner.reanchor
        if keep and self.origin <= abs_first - 1 and abs_end - self.ends[keep - 1] < CONTEXT_CHARS:
            b = self.ends[keep - 1]
            ids, ends = self._encode(text_slice(before, text, b, abs_end), b)
            if keep + len(ids) <= limit:
                covered = self.covered[:b - self.origin] + text_slice(before, text, b, abs_end)
                return Step(self, keep, ids, ends, self.origin, covered)
        return self._reanchor(before, text, abs_first, abs_end)

    def commit(self, step: Step, flags: list[bool], kv: list[tuple[Any, Any]]) -> None:
        """Take the step's new tokens, their predictions and the grown cache."""
        if step.past == 0:
            self.ids, self.ends, self.flags = [], [], []
            self.reanchors += 1
        else:
            del self.ids[step.past:], self.ends[step.past:], self.flags[step.past:]
        self.ids += step.ids
        self.ends += step.ends
        self.flags += flags
        self.origin, self.covered, self.kv = step.origin, step.covered, kv

    def word_labels(self, before: str, start: int, spans: Spans) -> list[bool]:
        """Per word, the style label of its first token (the shift of next-token labels undone)."""
        base = len(before) + start
        out = []
        for a, _ in spans:
            t = min(bisect_right(self.ends, base + a), len(self.ends) - 1)
            if self.owner.meta.label_shift == "next" and t > 0:
                t -= 1  # token t's label is predicted at t-1 (the session's first token: its own)
            out.append(bool(self.flags[t]))
        return out

    def _still_valid(self, before: str, text: str, abs_end: int) -> int:
        """Cached tokens that can stay: those ending at a word end the new text still shares
        (a token may change once more text follows it, a word end followed by a space not)."""
        if not self.ids:
            return 0
        now = text_slice(before, text, self.origin, min(self.ends[-1], abs_end))
        shared = self.origin + shared_prefix(self.covered, now)
        i = bisect_right(self.ends, shared)
        total = len(before) + len(text)
        while i > 0:
            e = self.ends[i - 1]
            if e >= total:  # nothing after it yet: checked again once more text is here
                break
            after = text_slice(before, text, e - 1, e + 1)
            if not after[0].isspace() and after[1].isspace():
                break
            i -= 1
        return i

    def _reanchor(self, before: str, text: str, abs_first: int, abs_end: int) -> Step:
        """The windowed path's window: tokens of the last CONTEXT_CHARS chars before the first
        word, the last `window` of them (further back if the first word needs it)."""
        a = max(0, abs_first - CONTEXT_CHARS)
        piece = text_slice(before, text, a, abs_end)
        enc = self.owner.tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        ends = [a + e for _, e in offsets]
        first = min(bisect_right(ends, abs_first), len(ids) - 1)
        s = max(0, min(len(ids) - self.owner.meta.window, first - 1))
        origin = a + offsets[s][0]
        return Step(self, 0, ids[s:], ends[s:], origin, piece[origin - a:])

    def _encode(self, piece: str, offset: int) -> tuple[list[int], list[int]]:
        ids, ends = self.owner.encode(piece)
        return ids, [offset + e for e in ends]


def run_steps(predictor: TokenClassifierPredictor, steps: list[Step]) -> None:
    """One forward for every step with new tokens (cached pasts left-padded to the longest, new
    tokens right-padded after them); each session takes its predictions and grown cache."""
    import torch
    from transformers import DynamicCache

    for s in steps:
        if not s.ids:  # nothing new: at most a crop
            s.session.commit(s, [], [(k[:, :, :s.past], v[:, :, :s.past]) for k, v in s.session.kv])
    steps = [s for s in steps if s.ids]
    if not steps:
        return
    model, device = predictor.model, predictor.model.device
    past, width, rows = max(s.past for s in steps), max(len(s.ids) for s in steps), len(steps)
    ids = torch.full((rows, width), predictor.pad_id, dtype=torch.long)
    mask = torch.zeros((rows, past + width), dtype=torch.long)
    positions = torch.zeros((rows, width), dtype=torch.long)
    for r, s in enumerate(steps):
        ids[r, :len(s.ids)] = torch.tensor(s.ids)
        mask[r, past - s.past:past + len(s.ids)] = 1
        positions[r] = torch.arange(s.past, s.past + width)
    cache = DynamicCache(ddp_cache_data=_padded_past(steps, past) if past else None)
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), **{predictor.cache_arg: cache},
                       use_cache=True).logits
        flags = (logits.argmax(-1) == predictor.meta.style_label).cpu().tolist()
        layers = [(k, v) for k, v, *_ in cache]
        for r, s in enumerate(steps):
            n, kv = len(s.ids), []
            for layer, (k, v) in enumerate(layers):
                new = k[r:r + 1, :, past:past + n], v[r:r + 1, :, past:past + n]
                if s.past:  # the kept past, then the new tokens (a copy: the batch is freed)
                    old_k, old_v = s.session.kv[layer]
                    kv.append((torch.cat([old_k[:, :, :s.past], new[0]], dim=2),
                               torch.cat([old_v[:, :, :s.past], new[1]], dim=2)))
                else:
                    kv.append((new[0].clone(), new[1].clone()))
            s.session.commit(s, flags[r][:n], kv)
    predictor.calls += rows
    predictor.token_forwards += sum(len(s.ids) for s in steps)


def _padded_past(steps: list[Step], past: int) -> list[tuple[Any, Any]]:
    """Per layer (keys, values) of all steps, each row's cache right-aligned at `past`."""
    template = next(s for s in steps if s.past).session.kv
    layers = []
    for layer, (ref_k, ref_v) in enumerate(template):
        k = ref_k.new_zeros((len(steps), ref_k.shape[1], past, ref_k.shape[3]))
        v = ref_v.new_zeros((len(steps), ref_v.shape[1], past, ref_v.shape[3]))
        for r, s in enumerate(steps):
            if s.past:
                sk, sv = s.session.kv[layer]
                k[r, :, past - s.past:] = sk[0, :, :s.past]
                v[r, :, past - s.past:] = sv[0, :, :s.past]
        layers.append((k, v))
    return layers


def label_sessions(predictor: TokenClassifierPredictor,
                   items: list[tuple[ClassifierSession, str, str, int, int, Spans]]
                   ) -> list[list[bool]]:
    """Labels for many sessions' calls: plan each, run all in one forward, read the words."""
    steps = [s.plan(before, text, start, end, spans[0][0] if spans else 0)
             for s, before, text, start, end, spans in items]
    run_steps(predictor, steps)
    return [s.word_labels(before, start, spans) for s, before, _, start, _, spans in items]
