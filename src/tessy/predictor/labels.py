"""Labelled segments as tokens and words: the shared ground truth of training and evaluation.

A labelled row is {id, text, style: [[start, end], ...]} (char spans of style phrases). A token or
word is style when it overlaps a style span; whitespace-only tokens carry no label (-100).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from tessy.errors import InputError
from tessy.io.jsonl import read_jsonl
from tessy.predictor.style_spans import merge_spans

IGNORE = -100  # the label index PyTorch's cross-entropy skips


@dataclass
class LabelledSegment:
    """One annotated segment."""

    id: str
    text: str
    style: list[tuple[int, int]]

    def is_style(self, start: int, end: int) -> bool:
        """Does [start, end) overlap a style span?"""
        i = bisect_right(self.style, (start, float("inf")))
        candidates = self.style[max(0, i - 1):i + 1]
        return any(a < end and start < b for a, b in candidates)


def read_labelled(path: str) -> list[LabelledSegment]:
    """Rows of an annotated JSONL file; a malformed row raises with file:line and field."""
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError(f"{where}: needs a `text` string")
        style = row.get("style")
        ok = isinstance(style, list) and all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(x, int) for x in s)
            and 0 <= s[0] < s[1] <= len(row["text"]) for s in style)
        if not ok:
            raise InputError(f"{where}: `style` must be [[start, end], ...] char spans in the text")
        out.append(LabelledSegment(str(row.get("id", where)), row["text"],
                                   merge_spans([(a, b) for a, b in style])))
    if not out:
        raise InputError(f"{path}: no labelled segments")
    return out


def token_labels(segment: LabelledSegment, offsets: list[tuple[int, int]], shift: str) -> list[int]:
    """Per token: 1 style, 0 capability, IGNORE for whitespace; with shift="next" the label at
    i is that of token i+1 (the published checkpoints' convention) and the last is IGNORE."""
    text = segment.text
    own = []
    for a, b in offsets:
        piece = text[a:b]
        if not piece.strip():
            own.append(IGNORE)
            continue
        a += len(piece) - len(piece.lstrip())  # " so" is style iff "so" is
        own.append(int(segment.is_style(a, b)))
    return own[1:] + [IGNORE] if shift == "next" else own


def encode_segment(tokenizer: Any, segment: LabelledSegment, shift: str,
                   window: int | None, truncation: str = "left") -> dict[str, list[int]]:
    """input_ids, attention_mask and labels of one segment truncated to `window` tokens (None:
    all of them): its last ones (`left`) or its first (`right`)."""
    enc = tokenizer(segment.text, add_special_tokens=False, return_offsets_mapping=True)
    labels = token_labels(segment, enc["offset_mapping"], shift)
    keep = slice(None, window) if truncation == "right" else slice(-window if window else 0, None)
    ids = enc["input_ids"][keep]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels[keep]}
