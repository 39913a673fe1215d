"""Scripted teacher and student for the serving benchmarks: deterministic, long, and with real
switches under the lexicon predictor.

A problem's script is a run of units. In unit u the student's script holds a style phrase and
the teacher's an interjection ("Wait,") at the same word positions, then both hold the same
capability sentences. So in a cooperative run the teacher is cut at its interjection, the student
writes its style phrase, is cut at the first capability word, and the teacher goes on: two
switches per unit. Like FakeBackend, the next word depends only on how many words the thinking
already has, so every scheduler and mode writes the same trajectory, and a teacher-only run
writes a trace of the same length.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from functools import lru_cache

STYLE = (
    "Okay, let's see,", "Hmm, wait, let me check,", "Alright, so,", "Hmm, but wait,",
    "Okay, so, let me verify,", "Wait, actually,", "Hmm, I think", "So, then, let me see,",
    "Alright, let me double-check,", "Okay, hold on, let me think,", "Hmm, so,",
    "Wait, let me make sure,", "Right, so, I think", "Okay, now, let me recall,",
)
INTERJECTIONS = ("Wait,", "Hmm,", "Okay,", "Actually,", "Well,", "Alright,")
FILLER = "the same check as before applies here once more".split()
CAPABILITY = (
    "The recurrence is f(n) = f(n-1) + f(n-2) with f(0) = 1 and f(1) = 1.",
    "A climb ending at stair n ends with a single step or a double step.",
    "Split the state into a(n) for single steps and b(n) for double steps.",
    "Here a(n) = a(n-1) + b(n-1) and b(n) = a(n-2) for n >= 3.",
    "The table for n = 3, 4, 5 gives totals 3, 4 and 6 respectively.",
    "This matches the Narayana-type recurrence t(n) = t(n-1) + t(n-3).",
    "For n = 6 the direct count gives a(6) = 6 and b(6) = 3, total 9.",
    "Compute t(n) iteratively in O(n) time and O(1) memory.",
    "Every value is reduced modulo 1e9 + 7 to keep the integers small.",
    "The base cases cover n = 0, 1, 2 without special handling elsewhere.",
    "In code: a, b = 1, 0, and each iteration updates the pair in place.",
    "The loop runs from 3 to n inclusive and returns a + b at the end.",
    "Edge case n = 0 returns 1, the empty climb, as the definition says.",
    "The matrix form [[1, 0, 1], [1, 0, 0], [0, 1, 0]] gives O(log n) time.",
    "Fast exponentiation squares the matrix once per bit of n.",
    "Both methods agree on the first twenty values of the sequence.",
)
ANSWER = "The answer is t(n) computed by the recurrence."


@lru_cache(maxsize=4096)
def units(question: str, mean_words: int) -> tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...]:
    """(style words, student words, teacher words) of each unit of one problem: a style phrase
    (an interjection and filler for the teacher) then the same capability sentences for both;
    in all 0.5-1.5 x `mean_words` words."""
    rng = random.Random(zlib.crc32(question.encode()))
    target = int(mean_words * rng.uniform(0.5, 1.5))
    out: list[tuple[int, tuple[str, ...], tuple[str, ...]]] = []
    words = 0
    while words < target:
        style = rng.choice(STYLE).split()
        interjection = [rng.choice(INTERJECTIONS), *FILLER[: len(style) - 1]]
        content = " ".join(rng.choice(CAPABILITY) for _ in range(rng.randint(2, 6))).split()
        out.append((len(style), (*style, *content), (*interjection, *content)))
        words += len(style) + len(content)
    return tuple(out)


@lru_cache(maxsize=4096)
def scripts(question: str, mean_words: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(student words, teacher words) of one problem (`units` joined)."""
    parts = units(question, mean_words)
    return (tuple(w for _, student, _ in parts for w in student),
            tuple(w for _, _, teacher in parts for w in teacher))


class ScriptedModel:
    """One role's model: `continuation(prompt)` yields its tokens (" word") until EOS."""

    def __init__(self, role: str, mean_words: int = 1000, end_marker: str = "</think>") -> None:
        self.role = role
        self.mean_words = mean_words
        self.end_marker = end_marker
        self.answer = ANSWER.split()

    def continuation(self, prompt: str) -> Iterator[str]:
        """The tokens that follow `prompt`: thinking words, the end marker, then the answer."""
        question, _, thinking = prompt.rpartition("<think>")
        student, teacher = scripts(question, self.mean_words)
        words = student if self.role == "student" else teacher
        if self.end_marker in thinking:
            n = len(thinking.split(self.end_marker, 1)[1].split())
            first = False
            rest: list[str] = list(self.answer[n:])
        else:
            n = len(thinking.split())
            first = not thinking.strip()
            rest = [*words[n:], self.end_marker, *self.answer]
        for word in rest:
            yield word if first else " " + word
            first = False
