"""The guard that stops a trajectory going wrong: a loop detector over its last words."""

from __future__ import annotations


def is_looping(text: str, window: int, min_repeats: int = 4, min_words: int = 24) -> bool:
    """True when the last words of `text` are one block of words repeated `min_repeats` times."""
    if window <= 0:
        return False
    rev = text[-window * 12:].rsplit(None, window)[-window:][::-1]  # newest word first
    n = len(rev)
    if n < min_words:
        return False
    period, longest = 0, n // min_repeats
    while True:  # candidate periods: where the newest word occurred before (found in C)
        try:
            period = rev.index(rev[0], period + 1, longest + 1)
        except ValueError:
            return False
        span = max(period * min_repeats, min_words)
        if span > n:
            return False
        # (the second words first: most candidates fail there, without copying the slices)
        if rev[1] == rev[period + 1] and rev[:span - period] == rev[period:span]:
            return True
