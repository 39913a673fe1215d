"""Problems with gold answers that tessy makes itself, to evaluate a student on (seeded).

Two kinds, alternating: arithmetic word problems (gold: a number) and lettered multiple-choice
items (gold: A-D, the distractors near misses of the right value). `tessy report` grades both
from the answer's last `\\boxed{}` / "Answer: X" / last number or letter. Rows are ordinary
problem rows (`id`, `prompt`, `answer`), split into a train and a held-out file.
"""

from __future__ import annotations

import random
from typing import Any

from tessy.errors import InputError

NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena")
THINGS = ("apples", "books", "coins", "marbles", "stamps", "pencils", "cards", "shells")
INSTRUCTION = "Think step by step, then give the final answer as 'Answer: X'."


def arithmetic(rng: random.Random, pid: str) -> dict[str, Any]:
    """A two-step word problem and its value."""
    who, what = rng.choice(NAMES), rng.choice(THINGS)
    a, b, c = rng.randint(5, 60), rng.randint(2, 12), rng.randint(2, 9)
    kind = rng.randrange(3)
    if kind == 0:
        text, value = (f"{who} has {a} {what}, buys {b} packs of {c} more and gives away {b}. "
                       f"How many {what} does {who} have now?"), a + b * c - b
    elif kind == 1:
        text, value = (f"{who} packs {a} {what} into boxes of {c}; the last box may be partly "
                       f"full. How many boxes does {who} need?"), -(-a // c)
    else:
        text, value = (f"{who} reads {b} pages a day for {c} days and then {a} pages in one day. "
                       f"How many pages is that in all?"), b * c + a
    return {"id": pid, "prompt": f"{text} {INSTRUCTION}", "answer": str(value)}


def multiple_choice(rng: random.Random, pid: str) -> dict[str, Any]:
    """A product-minus-sum question with four lettered options; gold is the right letter."""
    a, b, c = rng.randint(3, 19), rng.randint(3, 19), rng.randint(1, 30)
    value = a * b - c
    options = {value}
    while len(options) < 4:  # near misses: the usual slips (sign, off by a factor or a term)
        options.add(rng.choice([a * b + c, value + rng.randint(1, 9), value - rng.randint(1, 9),
                                (a + 1) * b - c, a * (b - 1) - c]))
    ordered = rng.sample(sorted(options), 4)
    letter = "ABCD"[ordered.index(value)]
    lines = "\n".join(f"({x}) {v}" for x, v in zip("ABCD", ordered, strict=True))
    prompt = (f"What is {a} × {b} − {c}?\n{lines}\nThink step by step, then give the letter of "
              "the right option as 'Answer: X'.")
    return {"id": pid, "prompt": prompt, "answer": letter}


def generate(count: int, seed: int = 0, held_out: float = 0.2
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out) rows: `count` problems, alternating kinds, the last share held out."""
    if count < 2:
        raise InputError("count: must be >= 2 (a train and a held-out problem)")
    if not 0 < held_out < 1:
        raise InputError("held_out: must be between 0 and 1")
    rng = random.Random(seed)
    rows = [(arithmetic if i % 2 == 0 else multiple_choice)(rng, f"gen-{seed}-{i}")
            for i in range(count)]
    rng.shuffle(rows)
    cut = max(1, min(count - 1, round(count * held_out)))
    return rows[cut:], rows[:cut]
