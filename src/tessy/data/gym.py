"""reasoning-gym's procedural tasks (and its shipped `codeio` data) as problem rows.

Each row carries the task's entry (`gym_entry`, JSON) and `grader: reasoning_gym:TASK`, so
`tessy report` grades an answer with the task's own `score_answer` (in the sandbox: see
`tessy.grading.gym`); `answer` is the entry's gold answer, for people and other tools.
"""

from __future__ import annotations

import json
from typing import Any

from tessy.grading.gym import generate
from tessy.grading.sandbox import Executor

INSTRUCTION = "Think step by step, then give the final answer on its own last line as 'Answer: X'."


def gym_rows(executor: Executor, task: str, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` problems of a reasoning-gym task, made in the sandbox."""
    rows = []
    for i, entry in enumerate(generate(executor, task, seed, count)):
        rows.append({"id": f"{task}-{seed}-{i}", "prompt": f"{entry['question']}\n\n{INSTRUCTION}",
                     "question": entry["question"], "answer": str(entry["answer"]),
                     "grader": f"reasoning_gym:{task}", "gym_entry": json.dumps(entry),
                     "source": f"reasoning_gym:{task}"})
    return rows
