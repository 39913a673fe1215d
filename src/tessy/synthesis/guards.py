"""The guard that stops a trajectory going wrong: a loop detector over its last words."""

from __future__ import annotations


def is_looping(text: str, window: int, min_repeats: int = 4, min_words: int = 24) -> bool:
    """True when the last words of `text` are one block of words repeated `min_repeats` times."""
    if window <= 0:
        return False
    tail = text[-window * 12:]
    # A loop's period is at most window / min_repeats words, and its newest two words recur one
    # period back: most calls (one per turn) end here, having split only the last words.
    k = window // min_repeats + 2
    near = tail.rsplit(None, k)[-k:][::-1]  # newest word first, the same words as below
    if len(near) < 3:  # a loop needs a period and its second word
        return False
    period, last = 0, min(k, len(near)) - 1
    while True:
        try:
            period = near.index(near[0], period + 1, last)
        except ValueError:
            return False
        if near[1] == near[period + 1]:
            break
    rev = tail.rsplit(None, window)[-window:][::-1]
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
