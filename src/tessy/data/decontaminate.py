"""Decontamination: drop train problems that are (nearly) a held-out or benchmark problem.

Two problems overlap when they state the same numbers and their texts are nearly the same
(rapidfuzz's normalised Indel similarity >= `threshold`, 0-100). Requiring the same numbers
keeps procedural problems that differ only in their quantities (`4 - 1 - 7` vs `4 - 1 - 8`)
apart; a copy or light paraphrase of a benchmark item keeps its numbers and is caught. What
is compared is the problem itself, not tessy's instruction around it (`problem_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Overlap:
    """A dropped train problem and the reference problem it overlaps."""

    id: str
    reference: str  # "file: id" of the reference problem
    similarity: float


def problem_text(row: dict[str, Any]) -> str:
    """The problem as stated: HumanEval's stub, reasoning-gym's question, else the prompt."""
    for key in ("code_prompt", "question", "prompt"):
        if isinstance(row.get(key), str) and row[key].strip():
            return str(row[key])
    return ""


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def overlaps(train: list[dict[str, Any]], references: list[tuple[str, str]],
             threshold: float = 90.0) -> list[Overlap]:
    """The train rows that overlap a reference (`(name, text)` pairs), best match each."""
    from rapidfuzz import fuzz, process

    by_numbers: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for name, text in references:
        by_numbers.setdefault(tuple(sorted(_NUMBER.findall(text))), []).append(
            (name, _normal(text)))
    found = []
    for row in train:
        text = problem_text(row)
        group = by_numbers.get(tuple(sorted(_NUMBER.findall(text))))
        if not group:
            continue
        best = process.extractOne(_normal(text), [t for _, t in group], scorer=fuzz.ratio,
                                  score_cutoff=threshold)
        if best:
            found.append(Overlap(str(row["id"]), group[best[2]][0], round(best[1], 1)))
    return found
