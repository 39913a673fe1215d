"""Decontamination: drop train problems that are (nearly) a held-out or benchmark problem.

What is compared is the problem itself, not tessy's instruction around it (`problem_text`),
lower-cased with punctuation and whitespace runs made one space. Two problems overlap when
* one's text contains the other's (a copy, with or without a wrapper around it), or
* with `threshold` < 100: they state the same numbers and their texts are at least
  `threshold` similar (rapidfuzz's normalised Indel similarity, 0-100): a reformatted or
  lightly edited copy. Requiring the same numbers keeps problems that differ only in their
  quantities (`4 - 1 - 7` vs `4 - 1 - 8`) apart, but procedural tasks whose problems differ
  in a formula or a word list share most of their text: fuzzy matching flags them as copies
  of each other (reasoning-gym's propositional_logic at 95-99), so it is opt-in.
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
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def overlaps(train: list[dict[str, Any]], references: list[tuple[str, str]],
             threshold: float = 100.0, min_chars: int = 40) -> list[Overlap]:
    """The train rows that overlap a reference (`(name, text)` pairs), the first match each.
    Containment counts only for texts of at least `min_chars` (normalised)."""
    from rapidfuzz import fuzz, process

    refs = [(name, _normal(text)) for name, text in references]
    exact = {text: name for name, text in refs}
    by_numbers: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for name, text in refs:
        by_numbers.setdefault(tuple(sorted(_NUMBER.findall(text))), []).append((name, text))
    found = []
    for row in train:
        text = _normal(problem_text(row))
        name = exact.get(text) or next(
            (n for n, ref in refs if min(len(ref), len(text)) >= min_chars
             and (ref in text or text in ref)), None)
        if name:
            found.append(Overlap(str(row["id"]), name, 100.0))
            continue
        group = by_numbers.get(tuple(sorted(_NUMBER.findall(text)))) if threshold < 100 else None
        best = group and process.extractOne(text, [t for _, t in group], scorer=fuzz.ratio,
                                            score_cutoff=threshold)
        if best:
            found.append(Overlap(str(row["id"]), group[best[2]][0], round(best[1], 1)))
    return found
