"""reasoning-gym (Apache-2.0, PyPI `reasoning-gym`): its procedural tasks and its scorers.

Both run in the sandbox, not in tessy's process: a task's scorer may parse the model's answer
with sympy (which evaluates text), and `codeio` makes its problems by executing the code
samples it ships. One sandboxed process makes a task's problems or scores a batch of answers,
so reasoning-gym is imported once per batch (~2 s), not per answer.
"""

from __future__ import annotations

import json
from typing import Any

from tessy.errors import InputError
from tessy.grading.executor import Executor, Job, Limits

# Generous: importing reasoning-gym takes ~2 s of CPU and ~300 MB; codeio runs its samples.
_LIMITS = Limits(cpu_seconds=300, wall_seconds=600, memory_mb=4096, file_mb=256,
                 output_chars=256 << 20)

_GENERATE = """
import json, sys
import reasoning_gym
from reasoning_gym.factory import DATASETS
args = json.loads(sys.stdin.read())
if args["task"] not in DATASETS:
    print(json.dumps({"unknown": sorted(DATASETS)}))
    sys.exit(0)
ds = reasoning_gym.create_dataset(args["task"], seed=args["seed"], size=args["size"])
for i in range(args["size"]):
    e = ds[i]
    print(json.dumps({"question": e["question"], "answer": e["answer"],
                      "metadata": e.get("metadata", {})}, default=str))
"""

_SCORE = """
import json, sys
import reasoning_gym
args = json.loads(sys.stdin.read())
ds = reasoning_gym.create_dataset(args["task"], seed=0, size=1)
for answer, entry in args["pairs"]:
    try:
        score = float(ds.score_answer(answer, entry))
    except Exception:
        score = None
    print(json.dumps(score))
"""


def generate(executor: Executor, task: str, seed: int, size: int) -> list[dict[str, Any]]:
    """`size` entries (question, answer, metadata) of a reasoning-gym task."""
    out = executor.run(Job(_GENERATE, json.dumps({"task": task, "seed": seed, "size": size}),
                           _LIMITS))
    if not out.ok:
        raise InputError(f"reasoning-gym task {task!r}: generating failed ({out.why()})")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if rows and "unknown" in rows[0]:
        close = [n for n in rows[0]["unknown"] if task.replace("-", "_") in n or n in task]
        hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
        raise InputError(f"reasoning-gym task {task!r}: no such task{hint}; it has "
                         f"{len(rows[0]['unknown'])}, e.g. chain_sum, basic_arithmetic, codeio")
    return rows


def score(executor: Executor, task: str, pairs: list[tuple[str, dict[str, Any]]]
          ) -> list[float | None]:
    """The task's own score (0..1) of each (answer, entry); None where the scorer failed."""
    out = executor.run(Job(_SCORE, json.dumps({"task": task, "pairs": pairs}), _LIMITS))
    scores: list[float | None] = [json.loads(line) for line in out.stdout.splitlines()
                                  if line.strip()]
    return scores + [None] * (len(pairs) - len(scores))
