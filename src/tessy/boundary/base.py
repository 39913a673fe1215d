"""What a boundary predictor is: a labeller of words as style (True) or capability (False).

Predictors see a bounded tail of the text before (`context`) and the words to label (`text`).
A predictor that labels the *next* token (the published checkpoints) or the current one both
reduce to this: the label a word gets is the label of its first token.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

CONTEXT_CHARS = 2000  # the most text before the labelled words any predictor reads


class PredictorSession(Protocol):
    """A predictor's state over one trajectory's thinking, across its turns."""

    async def label(self, before: str, text: str, start: int, end: int,
                    spans: list[tuple[int, int]], role: str = "") -> list[bool]:
        """Style labels of the words `spans` (offsets into text[start:end]) of `role`'s turn
        `text`, which continues the thinking `before`."""
        ...


class BoundaryPredictor(Protocol):
    """Labels words of reasoning text as style or capability for one role."""

    name: str
    # Words before the first undecided word that must be re-read (phrases spanning the boundary).
    lookbehind_words: int
    # Words after a word that must have arrived before its label is final (at most).
    lookahead_words: int
    # Tokens between calls when the config leaves it open (a model call costs a forward).
    default_every: int
    # Characters of text before the words that it reads (the watcher hands over no more).
    context_chars: int

    async def label(self, context: str, text: str, spans: list[tuple[int, int]]) -> list[bool]:
        """One label per word span of `text` (char offsets): True where the word is style.
        Concurrent calls may be batched into one model forward."""
        ...

    def label_batch(self, items: list[tuple[str, str, list[tuple[int, int]]]]) -> list[list[bool]]:
        """`label` for many (context, text, spans) items at once, without the event loop."""
        ...

    def open_words(self, context: str, text: str, spans: list[tuple[int, int]]) -> int:
        """How many of the last words of `text` may still change label as more words arrive
        (at most `lookahead_words`), so a cut is decided as early as the text allows."""
        ...

    def opens(self, text: str, start: int, end: int) -> bool:
        """Whether a style span may start at the word text[start:end] (`text` holds the 16 chars
        before it, or all there are). False only where it surely cannot: undecided words with
        no such word among them are capability, and none among the last `lookahead_words`
        leaves no word open, so the watcher skips those calls. A model: True."""
        ...

    def open_session(self) -> PredictorSession | None:
        """A session for one trajectory (labels then come from it), or None: it keeps no state
        and every call goes to `label`."""
        ...

    def reading(self) -> dict[str, Any]:
        """How it has read so far, for the run summary (its mode, calls, forwards; may be
        empty)."""
        ...


_WORD = re.compile(r"\S+")


def word_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) char offsets of the whitespace-separated words of text[start:end]."""
    return [m.span() for m in _WORD.finditer(text, start, len(text) if end is None else end)]
