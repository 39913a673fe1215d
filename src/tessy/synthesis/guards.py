"""The guard that stops a trajectory going wrong: a loop detector over its last words."""

from __future__ import annotations


def is_looping(text: str, window: int, min_repeats: int = 4, min_words: int = 24) -> bool:
    """True when the last words of `text` are one block of words repeated `min_repeats` times."""
    if window <= 0:
        return False
    words = text[-window * 12:].split()[-window:]
    n = len(words)
    for period in range(1, n // min_repeats + 1):
        span = max(period * min_repeats, min_words)
        if span > n:
            break
        if words[-1] != words[-1 - period]:  # the cheap test first: most periods fail it
            continue
        if all(words[n - 1 - i] == words[n - 1 - i - period] for i in range(span - period)):
            return True
    return False
