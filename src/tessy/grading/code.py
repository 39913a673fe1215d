"""Code answers: the candidate program in an answer, the program that tests it, and how a
contest judge compares outputs. Nothing here runs code; `sandbox.py` does."""

from __future__ import annotations

import ast
import re

# A fenced block: ``` or ```python (any info string), up to the closing fence or the end.
_FENCE = re.compile(r"^[ \t]*```[^\n`]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)


def candidate(answer: str) -> str | None:
    """The program an answer gives: its last fenced code block, else the whole answer if it
    parses as Python; None for a prose answer."""
    blocks = _FENCE.findall(answer)
    if blocks:
        return str(blocks[-1]).strip("\n")
    return answer.strip("\n") if looks_like_code(answer) else None


def looks_like_code(text: str) -> bool:
    """Whether the text parses as Python."""
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return bool(text.strip())


def humaneval_program(code: str, test: str, entry_point: str, stub: str = "") -> str:
    """HumanEval's check: the problem's stub (its imports and signature; the candidate may
    repeat the whole function or give only the body), the candidate, the tests, the call."""
    head = stub.rstrip("\n") + "\n" if stub else ""
    return f"{head}{code}\n\n\n{test}\n\n\ncheck({entry_point})\n"


def same_output(got: str, expected: str) -> bool:
    """Contest judging: trailing whitespace of each line and trailing blank lines ignored."""
    def lines(text: str) -> list[str]:
        out = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        return out

    return lines(got) == lines(expected)
