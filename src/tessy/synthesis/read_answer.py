"""The final answer read from the end of a thinking (`--answer-from thinking`).

An instruct model without a thinking mode, prompted inside `<think>`, writes its whole response
there, final answer included; the answer after `</think>` is then that answer, copied: the last
fenced code block, else the last `Answer: X` line, else the last non-empty line.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[\w+-]*\n.*?```", re.S)
_ANSWER_LINE = re.compile(r"^[ \t*#>-]*(?:final )?answer\b\s*[*]*\s*[:=].*$", re.I | re.M)


def read_answer(thinking: str) -> tuple[str, int]:
    """(answer, where it starts in `thinking`); ("", len) when the thinking is empty."""
    blocks = list(_FENCE.finditer(thinking))
    if blocks:
        return blocks[-1].group(0), blocks[-1].start()
    lines = list(_ANSWER_LINE.finditer(thinking))
    if lines:
        return lines[-1].group(0).strip(" \t>-#"), lines[-1].start()
    stripped = thinking.rstrip()
    start = stripped.rfind("\n") + 1
    return stripped[start:].strip(), start
