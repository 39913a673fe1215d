"""What a boundary predictor is: a labeller of words as style (True) or capability (False).

Predictors see a bounded tail of the text before (`context`) and the words to label (`text`).
A predictor that labels the *next* token (the published checkpoints) or the current one both
reduce to this: the label a word gets is the label of its first token.
"""

from __future__ import annotations

import re
from typing import Protocol


class BoundaryPredictor(Protocol):
    """Labels words of reasoning text as style or capability for one role."""

    name: str
    # Words before the first undecided word that must be re-read (phrases spanning the boundary).
    lookbehind_words: int
    # Words after a word that must have arrived before its label is final (at most). A
    # predictor may also define `open_words(context, text, spans) -> int`, the number of last
    # words that may still change now (the lexicon: only a phrase that can go on), so a cut
    # is decided as early as the text allows.
    lookahead_words: int
    # Tokens between calls when the config leaves it open (a model call costs a forward).
    default_every: int

    async def label(self, context: str, text: str, spans: list[tuple[int, int]]) -> list[bool]:
        """One label per word span of `text` (char offsets): True where the word is style."""


_WORD = re.compile(r"\S+")


def word_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) char offsets of the whitespace-separated words of text[start:end]."""
    return [m.span() for m in _WORD.finditer(text, start, len(text) if end is None else end)]
