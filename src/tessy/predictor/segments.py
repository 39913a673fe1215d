"""Training text for predictors: random ~60-word segments of one role's thinking (docs/DESIGN.md).

Traces come from single-role runs (`tessy synthesize --strategy student-only`, which is what
`tessy predictor sample` runs), or from any SFT JSONL whose thinking is wholly one model's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from tessy.boundary.base import word_spans
from tessy.errors import InputError
from tessy.io.rows import read_records
from tessy.records import chat_turns, thinking_bounds


def cut_segments(text: str, words: int, rng: random.Random) -> list[tuple[int, int]]:
    """Consecutive segments of text (char ranges at word edges), each words x U[0.75, 1.25] long,
    from a random first word so that segment starts are not tied to the trace start."""
    spans = word_spans(text)
    out, i = [], rng.randrange(min(words, len(spans))) if len(spans) > words else 0
    while i < len(spans):
        n = max(1, round(words * rng.uniform(0.75, 1.25)))
        chunk = spans[i:i + n]
        if len(chunk) >= max(1, words // 2):  # a short tail is not a fair sample
            out.append((chunk[0][0], chunk[-1][1]))
        i += n
    return out


def thinking_of(record: dict[str, Any], role: str, where: str) -> str:
    """The thinking of a record written by `role` alone; refuses mixed (cooperative) records."""
    tessy = record.get("tessy") or {}
    strategy = tessy.get("strategy")
    if strategy and strategy != f"{role}-only":
        raise InputError(f"{where}: a {strategy} record; a {role} predictor learns from "
                         f"{role}-only traces (tessy synthesize --strategy {role}-only)")
    _, assistant = chat_turns(record, where)
    start, end = thinking_bounds(assistant)
    return assistant[start:end].strip()


def sample_segments(paths: list[str], role: str, words: int = 60, per_trace: int | None = None,
                    seed: int = 0, counts: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Segment rows {id, source, role, text} from the records in `paths`; `counts` gets the
    number of `traces` read and of those `too_short` to give a segment (< words / 2 words)."""
    counts = {} if counts is None else counts
    counts.update(traces=0, too_short=0)
    rng = random.Random(seed)
    for path in paths:
        for where, record in read_records(path):
            text = thinking_of(record, role, where)
            cuts = cut_segments(text, words, rng)
            counts["traces"] += 1
            counts["too_short"] += not cuts
            if per_trace is not None and len(cuts) > per_trace:
                cuts = sorted(rng.sample(cuts, per_trace))
            rid = str(record.get("id", where))
            for a, b in cuts:
                yield {"id": f"{rid}@{a}", "source": rid, "role": role, "text": text[a:b]}
