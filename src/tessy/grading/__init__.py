"""Grading responses against what their problem rows say is right (see `grade.py`), with
model-written code run only in a sandbox (`sandbox.py`, or a remote one: `remote.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tessy.grading.grade import Gradable, Grade, Reason, check_row, grade_all, grader_of, needs_sandbox
from tessy.grading.sandbox import Executor, Job, Limits, LocalSandbox, Outcome

if TYPE_CHECKING:
    from tessy.records import Sample

__all__ = ["Executor", "Gradable", "Grade", "Job", "Limits", "LocalSandbox", "Outcome", "Reason",
           "check_row", "grade_all", "grade_samples", "grader_of", "open_executor",
           "summarize"]


def open_executor(spec: str = "auto") -> Executor:
    """`auto` | `bwrap` | `unshare` | `none` (local processes, see `sandbox.py`), or the URL of
    a SandboxFusion service (`http://host:8080`). Close it with `close()` when done."""
    if spec.startswith(("http://", "https://")):
        from tessy.grading.remote import SandboxFusion

        return SandboxFusion(spec)
    return LocalSandbox(spec)


def grade_samples(samples: list[Sample], sandbox: str = "auto", progress: bool = False,
                  desc: str = "grading") -> list[Grade | None]:
    """The grade of each sample's answer (None: nothing grades it); a sandbox is opened only
    when there is code to run. `sandbox`: see `open_executor`."""
    from tessy.progress import Progress

    items = [Gradable(s.answer, s.grading, s.gold) for s in samples]
    if not any(grader_of(i.fields, i.gold) for i in items):
        return [None] * len(items)
    executor = open_executor(sandbox) if needs_sandbox(items) else None
    try:
        with Progress(len(items), desc, "answer",  # a bar only for what runs
                      progress and executor is not None) as bar:
            return grade_all(items, executor, on_done=bar.update)
    finally:
        if executor is not None:
            executor.close()


def summarize(grades: list[Grade | None]) -> dict[str, Any] | None:
    """Pass rate with its 95% Wilson interval, and how many failed for each reason; None when
    nothing was graded."""
    graded = [g for g in grades if g is not None]
    if not graded:
        return None
    from scipy.stats import binomtest

    passed = sum(g.passed for g in graded)
    ci = binomtest(passed, len(graded)).proportion_ci(confidence_level=0.95, method="wilson")
    reasons: dict[str, int] = {}
    for g in graded:
        reasons[g.reason.value] = reasons.get(g.reason.value, 0) + 1
    return {"graded": len(graded), "passed": passed, "rate": passed / len(graded),
            "interval": [round(float(ci.low), 4), round(float(ci.high), 4)],
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}
