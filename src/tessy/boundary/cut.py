"""Where a turn ends: watch one role's arriving text and find its boundary or the thinking's end.

The same watcher serves `stream` mode (one long request, closed at the cut) and `step` mode
(k tokens per request, rolled back at the cut): it only sees text arrive, so both modes cut a
deterministic model's text at the same place.

Rules (docs/DESIGN.md, "Cuts"): the student keeps its leading style words and is cut at the first
capability word, possibly before its first word (then the teacher writes on at once); the teacher
keeps its leading capability words and is cut at the first style word, keeping at least one
word, so every round moves the trace on; cuts fall at word ends, so no word is ever split.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import pairwise

from tessy.boundary.base import CONTEXT_CHARS, BoundaryPredictor, PredictorSession, word_spans


def first_wrong(labels: list[bool], role: str, start: int = 0) -> int | None:
    """Index of the first word at or after `start` that is not `role`'s kind (the student
    writes style, the teacher capability), or None."""
    try:
        return labels.index(role != "student", start)  # the student wants style (True)
    except ValueError:
        return None


@dataclass
class Decision:
    """The turn is over: keep `keep` chars of it; `ends_thinking` if a marker was reached."""

    keep: int
    ends_thinking: bool


@dataclass
class TurnWatcher:
    """Incremental boundary search over the text of one turn."""

    role: str
    predictor: BoundaryPredictor | None  # None: never cut (single-role baselines)
    context: str  # shared thinking before this turn
    end_markers: tuple[str, ...]
    every: int = 1  # label settled words only once this many tokens arrived since the last call
    session: PredictorSession | None = None  # the predictor's state over this trajectory
    text: str = ""
    token_ends: list[int] = field(default_factory=list)  # char end of each arrived token
    spans: list[tuple[int, int]] = field(default_factory=list)  # complete words so far
    undecided: int = 0  # index of the first word whose label is not yet known
    _scan: int = 0  # where the next end-marker search starts
    _labelled_at: int = 0  # tokens arrived when the predictor was last called
    _open: int = 0  # last words whose label may still change ...
    _open_at: int = -1  # ... as of this many words
    _opener: int = -1  # index of the last word that may open a style span (`opens`)

    def __post_init__(self) -> None:
        self.thinking = self.context  # all of it, for a session (it reads only what is new)
        self.context = self.context[-CONTEXT_CHARS:]
        self._marker_len = max((len(m) for m in self.end_markers), default=1)
        self._marker_ends = frozenset(m[-1] for m in self.end_markers)
        self._lookahead_words = self.predictor.lookahead_words if self.predictor else 0

    async def feed(self, piece: str, n_tokens: int, final: bool, flush: bool = False,
                   token_chars: list[int] | None = None) -> Decision | None:
        """Add arrived text (`token_chars`: its tokens' lengths, where known); `final` when no
        more will come (EOS), `flush` at the end of a step-mode request (label now, before
        asking for more). Returns a decision or None."""
        if piece:
            text = self.text
            self.text = ""  # now `text` is the only reference, so `+=` grows it in place
            start = len(text)
            text += piece  # (instead of copying a trace of 100k+ chars for every token)
            self.text = text
            if token_chars and sum(token_chars) == len(piece):
                for size in token_chars:
                    start += size
                    self.token_ends.append(start)
            elif n_tokens <= 1:
                self.token_ends.append(start + len(piece))
            else:  # a non-streamed chunk: spread its tokens over its text
                self.token_ends.extend(start + len(piece) * (i + 1) // n_tokens for i in range(n_tokens))
        # A marker can end only in a piece holding its last character (most pieces do not).
        end = self._find_marker() if not self._marker_ends.isdisjoint(piece) else None
        if self.predictor is None:  # no cuts: only the end of the thinking matters
            return None if end is None else Decision(end, True)
        done = final or end is not None
        spans = self.spans
        before = len(spans)
        self._add_words(len(self.text) if end is None else end, done, piece)
        n = len(spans)
        if n == before == self._open_at and not (done or flush) and n - self._open <= self.undecided:
            return None  # no new word (a token inside one): nothing is newly settled
        if done:
            settled = n
        else:
            if self._open_at != n:  # only new words can change it
                # Open words start at an opener among the last `lookahead_words`, and never
                # before the first undecided word (such words were settled once, so no phrase
                # from them goes on): without such an opener, none.
                opener = self._opener >= n - self._lookahead_words and self._opener >= self.undecided
                self._open = self._lookahead() if opener else 0
                self._open_at = n
            settled = n - self._open
        due = done or flush or len(self.token_ends) - self._labelled_at >= self.every
        if settled > self.undecided and due:
            self._labelled_at = len(self.token_ends)
            lo = max(0, self.undecided - self.predictor.lookbehind_words)
            # A phrase can start only at an opener, and none that starts before the first
            # undecided word reaches it (such words stay open until the phrase is known):
            # without an undecided opener, every undecided word is capability.
            if self._opener >= self.undecided:
                cut = await self._search(lo, settled)
            elif self.role == "student":  # no style span can start: capability, without a call
                cut = self._cut_at(self.undecided)
            else:
                cut, self.undecided = None, settled
            if cut is not None:
                return Decision(cut, False)
        if end is not None:
            return Decision(end, True)
        return None

    def tokens_in(self, chars: int) -> int:
        """Tokens that produced the first `chars` chars of the turn (a straddling token counts)."""
        if chars <= 0:
            return 0
        return min(len(self.token_ends), bisect_left(self.token_ends, chars) + 1)

    def past(self, chars: int) -> tuple[str, list[int]] | None:
        """The text after the first `chars` chars and its tokens' lengths; None when a token
        straddles `chars` (the rest is not whole tokens)."""
        ends = self.token_ends
        i = bisect_left(ends, chars)
        if chars and (i == len(ends) or ends[i] != chars):
            return None
        start = i + 1 if chars else 0
        return self.text[chars:], [b - a for a, b in pairwise([chars, *ends[start:]])]

    def _lookahead(self) -> int:
        """Complete words at the end whose label may still change (a phrase may go on)."""
        predictor = self.predictor
        if predictor is None or not predictor.lookahead_words:
            return 0
        lo = max(0, len(self.spans) - predictor.lookahead_words)
        if lo == len(self.spans):
            return 0
        start = self.spans[lo][0]
        # (near the turn's start, the 16 chars before reach into the thinking before it)
        before = self.text[start - 16:start] if start >= 16 else (self.context + self.text[:start])[-16:]
        spans = [(a - start, b - start) for a, b in self.spans[lo:]]
        return predictor.open_words(before, self.text[start:self.spans[-1][1]], spans)

    def _find_marker(self) -> int | None:
        start = max(0, self._scan - self._marker_len)
        self._scan = len(self.text)
        found = None
        for marker in self.end_markers:
            i = self.text.find(marker, start)
            if i >= 0 and (found is None or i < found):
                found = i
        return found

    def _add_words(self, limit: int, done: bool, piece: str) -> None:
        text, spans = self.text, self.spans
        start = spans[-1][1] if spans else 0
        rest = piece[1:]
        if not done and piece[:1] == " " and rest and " " not in rest and rest.isprintable():
            # Most tokens are " word": the word before it, if any, is now whole. (After the last
            # whole word come only whitespace and at most that one growing word; `isprintable`
            # is False for every whitespace but " ".)
            end = len(text) - len(piece)
            a = end - len(text[start:end].lstrip())
            if a < end:
                spans.append((a, end))
                if self._may_open(a, end):
                    self._opener = len(spans) - 1
            return
        new = word_spans(text, start, limit)
        if new and not done and new[-1][1] == len(text):
            new.pop()  # the last word may still be growing
        n = len(spans)
        for i in range(len(new) - 1, -1, -1):  # the last word that may open a style span
            if self._may_open(*new[i]):
                self._opener = n + i
                break
        spans.extend(new)

    def _may_open(self, start: int, end: int) -> bool:
        """The predictor's `opens` for the word text[start:end], with the 16 chars before it
        (near the turn's start they reach into the context)."""
        assert self.predictor is not None
        if start >= 16:
            return self.predictor.opens(self.text, start, end)
        joined = self.context[-16:] + self.text[:end]
        shift = len(joined) - end
        return self.predictor.opens(joined, start + shift, end + shift)

    async def _search(self, lo: int, settled: int) -> int | None:
        """Label the words from `lo` (the lookbehind) on; the keep offset of the first
        wrong-kind word up to `settled`, if any."""
        assert self.predictor is not None  # feed() searches only with a predictor
        start, end = self.spans[lo][0], self.spans[-1][1]
        spans = [(a - start, b - start) for a, b in self.spans[lo:]] if start else self.spans[lo:]
        if self.session is not None:
            labels = await self.session.label(self.thinking, self.text, start, end, spans,
                                              self.role)
        else:
            labels = await self.predictor.label(self._context(start), self.text[start:end], spans)
        wrong = first_wrong(labels[:settled - lo], self.role, self.undecided - lo)
        if wrong is None:
            self.undecided = settled
            return None
        return self._cut_at(wrong + lo)

    def _cut_at(self, word: int) -> int:
        """The keep offset of a cut before word `word` (the first of the wrong kind)."""
        if self.role != "student":  # the teacher always moves the trace on
            word = max(word, 1)
        return self.spans[word - 1][1] if word else 0

    def _context(self, start: int) -> str:
        """The predictor's share of the text before char `start` of the turn."""
        assert self.predictor is not None
        chars = self.predictor.context_chars
        context = self.text[max(0, start - chars):start]
        if len(context) < chars:  # reaches back into the thinking before this turn
            context = (self.context + context)[-chars:]
        return context
