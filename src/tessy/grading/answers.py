"""Grading a stated answer against a gold one: a letter A-J, a number, or exact text.

The answer is read from its final span (the last `\\boxed{}`, else what follows the last
"Answer:" / "the answer is"), so reasoning that mentions other numbers is not graded.
"""

from __future__ import annotations

import re

_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-J])\)?(?![A-Za-z])")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# The stated answer runs to the end of its line: "the final answer is:\nAnswer: -4" is two
# statements, the last of which ("-4") counts, not one that swallows the next line's marker.
_ANSWER_IS = re.compile(r"\banswer[ \t]*(?:is[ \t]*:?|:)[ \t]*(\S[^\n]*)", re.IGNORECASE)


def final_span(answer: str) -> str:
    """The part of an answer that states the result: the last `\\boxed{...}`, else what follows
    the last "Answer:" / "answer is" (to the end of its line), else all of it."""
    start = answer.rfind("\\boxed{")
    if start >= 0:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, len(answer)):
            depth += {"{": 1, "}": -1}.get(answer[j], 0)
            if depth == 0:
                return answer[i + 1:j]
    stated = list(_ANSWER_IS.finditer(answer))
    return stated[-1].group(1) if stated else answer


def extract(answer: str, gold: str) -> str | None:
    """The answer's choice in the gold's kind, read from its final span (`final_span`): a
    letter for A-J golds, else its last number, else its normalised text."""
    answer = final_span(answer)
    if re.fullmatch(r"[A-J]", gold.strip()):
        letters = _LETTER.findall(answer)
        return letters[-1] if letters else None
    if _NUMBER.fullmatch(gold.strip()):
        numbers = _NUMBER.findall(answer)
        return numbers[-1].replace(",", "").rstrip(".") if numbers else None
    return _norm(answer)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip("$").strip().strip(".").lower())


def matches(answer: str, gold: str) -> bool:
    """Whether the answer states the gold answer."""
    gold = gold.strip()
    got = extract(answer, gold)
    if got is None:
        return False
    if _NUMBER.fullmatch(gold):
        try:
            return float(got) == float(gold.replace(",", ""))
        except ValueError:
            return False
    return got == (gold if re.fullmatch(r"[A-J]", gold) else _norm(gold))
