"""Grading responses: what grades a problem (read from its row), and the grade of each answer.

A row says how it is graded in `grader`, or by its fields:

| grader | row fields | passes when |
|---|---|---|
| `humaneval` | `test`, `entry_point` (`code_prompt`: the stub) | its code passes `check` |
| `stdio` | `tests`: `[{"input": ..., "output": ...}]` | its code prints each output |
| `reasoning_gym:TASK` | `gym_entry` (the task's entry, JSON) | `score_answer` gives 1.0 |
| `answer` | a gold `answer` (or `gold`, `label` ...) | the stated answer equals it |

Code runs only in the sandbox (`sandbox.py`); answers are compared in-process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tessy.errors import InputError
from tessy.grading import code, gym
from tessy.grading.answers import final_span, matches
from tessy.grading.executor import Executor, Job, Limits, Outcome, on_cores

CODE_GRADERS = ("humaneval", "stdio")
GYM = "reasoning_gym:"
CODE_LIMITS = Limits()  # each run of an answer's code, unless the caller says otherwise


class Reason(StrEnum):
    """Why a response passed or failed."""

    PASSED = "passed"
    WRONG_ANSWER = "wrong answer"
    NO_ANSWER = "no answer"
    NO_CODE = "no code"
    RUNTIME_ERROR = "runtime error"
    TIMEOUT = "timeout"
    SANDBOX_ERROR = "sandbox error"  # the job did not run: the grade says nothing of the answer


@dataclass(frozen=True)
class Grade:
    """The grade of one response; `detail` is one line for a person (the error, the score)."""

    passed: bool
    reason: Reason
    detail: str = ""


@dataclass(frozen=True)
class Gradable:
    """A response and the row fields that grade it (`gold`: the row's gold answer, if any)."""

    response: str
    fields: dict[str, Any]
    gold: str | None = None


def grader_of(fields: dict[str, Any], gold: str | None) -> str | None:
    """How a row is graded (see the module's table); None when nothing grades it."""
    kind = fields.get("grader")
    if kind:
        return str(kind)
    if fields.get("test") is not None:
        return "humaneval"
    if fields.get("tests") is not None:
        return "stdio"
    return "answer" if gold is not None else None


def check_row(fields: dict[str, Any], gold: str | None, where: str) -> None:
    """Refuse a row whose grading fields cannot grade anything (one line naming `where`)."""
    kind = grader_of(fields, gold)
    if kind is None:
        return
    if kind == "humaneval":
        if not isinstance(fields.get("test"), str) or not fields["test"].strip():
            raise InputError(f"{where}: grader humaneval needs a `test` string")
        if not isinstance(fields.get("entry_point"), str) or not fields["entry_point"].isidentifier():
            raise InputError(f"{where}: `test` needs an `entry_point` (the function's name)")
    elif kind == "stdio":
        try:
            tests = stdio_tests(fields)
        except ValueError:
            tests = None
        if not isinstance(tests, list) or not tests or not all(
                isinstance(t, dict) and isinstance(t.get("input"), str)
                and isinstance(t.get("output"), str) for t in tests):
            raise InputError(f"{where}: `tests` must be a non-empty list of "
                             '{"input": "...", "output": "..."} objects')
    elif kind.startswith(GYM):
        try:
            entry = _gym_entry(fields)
        except ValueError:
            entry = None
        if not kind[len(GYM):] or not isinstance(entry, dict) or "answer" not in entry:
            raise InputError(f"{where}: grader {kind} needs `gym_entry`, the task's entry as "
                             "JSON (question, answer, metadata)")
    elif kind == "answer":
        if gold is None:
            raise InputError(f"{where}: grader answer needs a gold `answer`")
    else:
        raise InputError(f"{where}: unknown grader {kind!r} (humaneval, stdio, answer, "
                         "reasoning_gym:TASK)")


def needs_sandbox(items: list[Gradable]) -> bool:
    """Whether grading these runs anything (code, or a reasoning-gym scorer)."""
    return any(_kind(i) in CODE_GRADERS or _kind(i).startswith(GYM) for i in items)


def grade_all(items: list[Gradable], executor: Executor | None, workers: int | None = None,
              on_done: Callable[[int], None] | None = None, limits: Limits = CODE_LIMITS
              ) -> list[Grade | None]:
    """The grade of every item (None: ungraded), code run by `executor` (`workers` at once),
    each run of an answer's code under `limits`."""
    grades: list[Grade | None] = [None] * len(items)
    code_jobs: list[int] = []
    gym_jobs: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        kind = _kind(item)
        if kind == "answer":
            grades[i] = _grade_answer(item)
        elif kind in CODE_GRADERS:
            code_jobs.append(i)
        elif kind.startswith(GYM):
            gym_jobs.setdefault(kind[len(GYM):], []).append(i)
    done = sum(g is not None for g in grades)
    if on_done and done:
        on_done(done)
    if not (code_jobs or gym_jobs):
        return grades
    if executor is None:
        raise InputError("grading code needs a sandbox")
    sandbox = executor

    def code_one(i: int) -> None:
        grades[i] = _grade_code(items[i], sandbox, limits)
        if on_done:
            on_done(1)

    on_cores(code_one, code_jobs, workers)
    for task, indices in gym_jobs.items():
        for start in range(0, len(indices), 200):  # one sandboxed scorer per 200 answers
            chunk = indices[start:start + 200]
            for i, g in zip(chunk, _grade_gym(task, [items[i] for i in chunk], sandbox),
                            strict=True):
                grades[i] = g
            if on_done:
                on_done(len(chunk))
    return grades


def _kind(item: Gradable) -> str:
    return grader_of(item.fields, item.gold) or ""


def _grade_answer(item: Gradable) -> Grade:
    if not item.response.strip():
        return Grade(False, Reason.NO_ANSWER)
    assert item.gold is not None
    if matches(item.response, item.gold):
        return Grade(True, Reason.PASSED)
    return Grade(False, Reason.WRONG_ANSWER, f"expected {item.gold!r}")


def _grade_code(item: Gradable, executor: Executor, limits: Limits) -> Grade:
    program = code.candidate(item.response)
    if program is None or not program.strip():
        return Grade(False, Reason.NO_CODE)
    fields = item.fields
    if _kind(item) == "humaneval":
        stub = fields.get("code_prompt")
        if stub is None and code.looks_like_code(str(fields.get("prompt", ""))):
            stub = fields["prompt"]  # a HumanEval row as published: the prompt is the stub
        job = Job(code.humaneval_program(program, fields["test"], fields["entry_point"],
                                         stub or ""), limits=limits)
        return _from_outcome(executor.run(job), expected=None)
    tests = stdio_tests(fields)
    for n, test in enumerate(tests, 1):
        grade = _from_outcome(executor.run(Job(program, test["input"], limits)),
                              expected=test["output"])
        if not grade.passed:
            return Grade(False, grade.reason, f"test {n}/{len(tests)}: {grade.detail}".rstrip(": "))
    return Grade(True, Reason.PASSED)


def _from_outcome(out: Outcome, expected: str | None) -> Grade:
    if out.error:
        return Grade(False, Reason.SANDBOX_ERROR, out.error)
    why = out.why()
    if out.timed_out or why == "CPU time limit":
        return Grade(False, Reason.TIMEOUT, why)
    if out.returncode != 0:
        wrong = why.startswith("AssertionError")  # HumanEval's checks are asserts
        return Grade(False, Reason.WRONG_ANSWER if wrong else Reason.RUNTIME_ERROR, why)
    if expected is not None and not code.same_output(out.stdout, expected):
        got = out.stdout.strip().splitlines()
        return Grade(False, Reason.WRONG_ANSWER, f"printed {(got[0] if got else '')[:60]!r}")
    return Grade(True, Reason.PASSED)


def stdio_tests(fields: dict[str, Any]) -> Any:
    """A row's `tests`, decoded where it is a JSON string (as CSV and some datasets carry it)."""
    tests = fields.get("tests")
    return json.loads(tests) if isinstance(tests, str) else tests


def _gym_entry(fields: dict[str, Any]) -> Any:
    entry = fields.get("gym_entry")
    return json.loads(entry) if isinstance(entry, str) else entry


def _grade_gym(task: str, items: list[Gradable], executor: Executor) -> list[Grade]:
    answers = [final_span(i.response).strip() for i in items]
    scores = gym.score(executor, task, [(a, _gym_entry(i.fields)) for a, i in
                                        zip(answers, items, strict=True)])
    grades = []
    for answer, score in zip(answers, scores, strict=True):
        if not answer:
            grades.append(Grade(False, Reason.NO_ANSWER))
        elif score is None:
            grades.append(Grade(False, Reason.SANDBOX_ERROR, "the task's scorer failed"))
        elif score >= 1.0:
            grades.append(Grade(True, Reason.PASSED))
        else:
            grades.append(Grade(False, Reason.WRONG_ANSWER, f"score {score:.2f}"))
    return grades
