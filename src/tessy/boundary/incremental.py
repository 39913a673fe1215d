"""Incremental classifier inference: one KV cache per trajectory, not a window per call.

The windowed path (classifier.py) re-reads the last `window` tokens at every call, about
window / every forwards per kept token. A session keeps the classifier's KV cache over the
trajectory's thinking and runs only the tokens that arrived since its last call:

* extend: new tokens go through the model with the cache as past, attending to what the
  windowed path's window ending at the call would hold: the anchor's first SINKS tokens (fresh
  states, their keys rotated to the window's start: the attention sink a window's first token
  is) and the cached tokens after them. So every token is read over `window` tokens at
  positions the predictor was trained on, however long the session runs. What still differs
  from the windowed path: cached tokens were read over their own earlier windows, not cut off
  at this one's start; deep models trained on short windows notice (BENCHMARKS.md);
* crop: text the cache covers that the trajectory no longer has (decoded past a cut, then
  discarded) is dropped back to the last word end both still share, and read again from there;
* trim: keys older than the window (and SLACK) are never attended again and are dropped;
* re-anchor: a session with nothing usable in its cache, or more than `window` tokens to catch up
  on (the other role wrote a long turn), is rebuilt from the last `window` tokens exactly as the
  windowed path reads them;
* verify: the cached reading moves a label only where the model was unsure, so a call whose cut
  rests on a word scored within `verify_margin` logits of the boundary is read again from the
  window (a re-anchor): that word gets the windowed path's label, and later ones a fresh cache.

Cost per kept token: one forward for each token of the thinking the session reads, plus the
tokens decoded past cuts; a role whose predictor is another model's pays for catching up on the
other role's turns (at most a window each). This module keeps each session's books (what its
cache covers, what a call must run); `kv_batch.py` runs the calls of concurrent sessions as one
forward.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tessy.boundary.base import CONTEXT_CHARS
from tessy.boundary.cut import first_wrong
from tessy.boundary.kv_batch import SINKS, run_steps

if TYPE_CHECKING:
    from tessy.boundary.classifier import TokenClassifierPredictor

Spans = list[tuple[int, int]]
SLACK = 64  # cached tokens kept beyond the window, so a crop at a cut leaves a full window


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
    past: int  # 0: re-anchored, the session starts over at position 0
    ids: list[int]
    ends: list[int]  # absolute char end of each new token
    origin: int  # where the session's tokens start after this step (changes on re-anchor)
    covered: str  # the text from `origin` to the last token's end after this step

    @property
    def pos(self) -> int:
        """Position id of the session's first token during this step."""
        return self.session.pos if self.past else 0


@dataclass
class ClassifierSession:
    """The classifier's view of one trajectory's thinking (shared by roles that share it)."""

    owner: TokenClassifierPredictor
    origin: int = 0  # absolute char offset of the first cached token
    covered: str = ""  # text from `origin` to the end of the last cached token
    ids: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # absolute char end of each cached token
    margins: list[float] = field(default_factory=list)  # style minus capability logit, per token
    kv: list[tuple[Any, Any]] = field(default_factory=list)  # per layer (keys, values), batch 1
    pos: int = 0  # position id of the first cached token (positions run on across trims)
    sink: list[tuple[Any, Any]] = field(default_factory=list)  # the anchor's first SINKS, per layer
    reanchors: int = 0  # times the cache was rebuilt from the window
    verified: int = 0  # calls read again from the window because a deciding word was unsure

    async def label(self, before: str, text: str, start: int, end: int, spans: Spans,
                    role: str = "") -> list[bool]:
        """Style labels of the words `spans` (offsets into text[start:end]) of `role`'s turn that
        continues the thinking `before`; batched with other sessions' calls. Without a role no
        call is verified."""
        labels: list[bool] = await self.owner.session_batcher.submit(
            SessionCall(self, before, text, start, end, spans, role))
        return labels

    def plan(self, before: str, text: str, start: int, end: int, first_word: int) -> Step:
        """What to run so the cache covers the thinking up to `end` of the turn: an extension
        of the cached tokens where they still match, else a re-anchor."""
        n = len(before)
        abs_end, abs_first = n + end, n + start + first_word
        keep = self._still_valid(before, text, abs_end)
        window = self.owner.meta.window
        full = keep >= window or self.pos == 0  # a crop may not leave a trimmed cache short
        if (keep and full and self.origin <= abs_first - 1
                and abs_end - self.ends[keep - 1] < CONTEXT_CHARS):
            b = self.ends[keep - 1]
            ids, ends = self._encode(text_slice(before, text, b, abs_end), b)
            if len(ids) <= window - SINKS:  # the sinks' places stay old tokens'
                covered = self.covered[:b - self.origin] + text_slice(before, text, b, abs_end)
                return Step(self, keep, ids, ends, self.origin, covered)
        return self.window_step(before, text, abs_first, abs_end)

    def commit(self, step: Step, margins: list[float], kv: list[tuple[Any, Any]]) -> None:
        """Take the step's new tokens, their predictions and the grown cache."""
        pos = step.pos  # (read before the session changes)
        if step.past == 0:  # re-anchored: the window read anew
            self.ids, self.ends, self.margins, self.sink = [], [], [], []
            self.reanchors += 1
        else:
            del self.ids[step.past:], self.ends[step.past:], self.margins[step.past:]
        self.ids += step.ids
        self.ends += step.ends
        self.margins += margins
        self.origin, self.covered, self.kv, self.pos = step.origin, step.covered, kv, pos
        if step.past == 0:  # the anchor's first tokens: fresh states, like a window's start
            self.sink = [(k[:, :, :SINKS].clone(), v[:, :, :SINKS].clone()) for k, v in kv]
        self._trim()

    def _trim(self) -> None:
        """Drop cached tokens no query attends to any more (older than window + SLACK)."""
        d = len(self.ids) - self.owner.meta.window - SLACK
        if d <= 0:
            return
        origin = self.ends[d - 1]
        self.covered = self.covered[origin - self.origin:]
        self.origin, self.pos = origin, self.pos + d
        del self.ids[:d], self.ends[:d], self.margins[:d]
        self.kv = [(k[:, :, d:], v[:, :, d:]) for k, v in self.kv]

    def word_labels(self, before: str, start: int, spans: Spans) -> list[bool]:
        """Per word, the style label of its first token (the shift of next-token labels undone)."""
        style = self.owner.is_style
        return [style(self.margins[t]) for t in self._label_tokens(before, start, spans)]

    def unsure(self, before: str, start: int, spans: Spans, role: str, labels: list[bool]) -> bool:
        """Whether the call's cut rests on a word scored within `verify_margin` of the boundary:
        one up to and including the first of the wrong kind for `role` (later words are cut off
        whatever their labels)."""
        margin = self.owner.verify_margin
        if not margin or not role:
            return False
        wrong = first_wrong(labels, role)
        deciding = spans if wrong is None else spans[:wrong + 1]
        return any(abs(self.margins[t]) < margin
                   for t in self._label_tokens(before, start, deciding))

    def _label_tokens(self, before: str, start: int, spans: Spans) -> list[int]:
        """Per word, the cached token whose prediction is its label."""
        base = len(before) + start
        out = []
        for a, _ in spans:
            t = min(bisect_right(self.ends, base + a), len(self.ends) - 1)
            if self.owner.meta.label_shift == "next" and t > 0:
                t -= 1  # token t's label is predicted at t-1 (the session's first token: its own)
            out.append(t)
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

    def window_step(self, before: str, text: str, abs_first: int, abs_end: int) -> Step:
        """The windowed path's window: tokens of the last CONTEXT_CHARS chars before the first
        word, the last `window` of them (further back if the first word needs it)."""
        a = max(0, abs_first - CONTEXT_CHARS)
        piece = text_slice(before, text, a, abs_end)
        enc = self.owner.tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        ends = [a + e for _, e in offsets]
        first = min(bisect_right(ends, abs_first), len(ids) - 1)
        s = self.owner.window_start(len(ids), first)
        origin = a + offsets[s][0]
        return Step(self, 0, ids[s:], ends[s:], origin, piece[origin - a:])

    def _encode(self, piece: str, offset: int) -> tuple[list[int], list[int]]:
        ids, ends = self.owner.encode(piece)
        return ids, [offset + e for e in ends]


@dataclass
class SessionCall:
    """One `ClassifierSession.label` call waiting for its batch."""

    session: ClassifierSession
    before: str  # the thinking before the turn
    text: str  # the turn so far
    start: int  # the labelled words' range in `text`
    end: int
    spans: Spans  # the words, as offsets into text[start:end]
    role: str  # whose turn ("": the call is never verified)

    @property
    def first_word(self) -> int:
        """Offset of the call's first word in text[start:end]."""
        return self.spans[0][0] if self.spans else 0

    def plan(self) -> Step:
        """What to run so the session's cache covers the call's text."""
        return self.session.plan(self.before, self.text, self.start, self.end, self.first_word)

    def window_step(self) -> Step:
        """The call read afresh from the window (to verify it)."""
        n = len(self.before)
        return self.session.window_step(self.before, self.text, n + self.start + self.first_word,
                                        n + self.end)

    def labels(self) -> list[bool]:
        """The words' labels from the session's cache."""
        return self.session.word_labels(self.before, self.start, self.spans)

    def unsure(self, labels: list[bool]) -> bool:
        """Whether the cut these labels make rests on a word the model was unsure of."""
        return self.session.unsure(self.before, self.start, self.spans, self.role, labels)


def label_sessions(predictor: TokenClassifierPredictor, calls: list[SessionCall]) -> list[list[bool]]:
    """Labels for many sessions' calls: plan each, run all in one forward, read the words;
    then the calls whose cut rests on an unsure word read again from the window, in one more."""
    steps = [call.plan() for call in calls]
    run_steps(predictor, steps)
    labels = [call.labels() for call in calls]
    again = [i for i, (c, step) in enumerate(zip(calls, steps, strict=True))
             if step.past and c.unsure(labels[i])]
    if again:
        for i in again:
            calls[i].session.verified += 1
        run_steps(predictor, [calls[i].window_step() for i in again])
        predictor.verified += len(again)
        for i in again:
            labels[i] = calls[i].labels()
    return labels
