"""SFT examples from tessy records, `tessy export` output or any chat SFT data.

An example is the first user turn and the last assistant turn of a record, in the student's
convention `<think>\\n{thinking}\\n</think>\\n\\n{answer}`. A record that cannot be one (no assistant
turn, no `<think>` block, empty thinking or answer) stops the run with its file:line, unless
`skip_bad`: training on a silently shrunken dataset is worse than not training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tessy.errors import InputError
from tessy.io.rows import as_record, record_rows
from tessy.records import THINK_CLOSE, Sample, chat_turns, parse_record, thinking_bounds
from tessy.templates import THINK_INSTRUCTION


@dataclass(frozen=True)
class Example:
    """One training example: the problem, the thinking and the answer."""

    id: str
    where: str
    prompt: str
    thinking: str
    answer: str

    @property
    def assistant(self) -> str:
        """The assistant turn as trained."""
        return f"<think>\n{self.thinking}\n{THINK_CLOSE}\n\n{self.answer}"

    def prompt_messages(self, instruct_thinking: bool) -> list[dict[str, str]]:
        """The prompt framed as the student is prompted during synthesis: with `chat-think`,
        after the system instruction to think first."""
        prompt = [{"role": "user", "content": self.prompt}]
        if instruct_thinking:
            prompt.insert(0, {"role": "system", "content": THINK_INSTRUCTION})
        return prompt

    def conversation(self, instruct_thinking: bool, index: int) -> dict[str, Any]:
        """TRL's conversational prompt/completion row; `index` finds the example again."""
        return {"index": index, "prompt": self.prompt_messages(instruct_thinking),
                "completion": [{"role": "assistant", "content": self.assistant}]}


def split_eval(rows: list[dict[str, Any]], fraction: float, seed: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, held-out rows): `fraction` of them, at least one when asked for and at
    least one left to train on, drawn with `seed`."""
    if not fraction or len(rows) < 2:
        return rows, []
    n = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    held = set(random.Random(seed).sample(range(len(rows)), n))
    return ([r for i, r in enumerate(rows) if i not in held],
            [r for i, r in enumerate(rows) if i in held])


@dataclass
class ExampleSet:
    """The examples of some input files, the records behind them, and what was skipped."""

    examples: list[Example] = field(default_factory=list)
    samples: dict[str, list[Sample]] = field(default_factory=dict)  # per input path
    skipped: list[str] = field(default_factory=list)


def example_of(row: Any, where: str) -> tuple[Example, Sample]:
    """The example of one record; raises InputError naming `where` and what is missing."""
    row = as_record(where, row)
    prompt, assistant = chat_turns(row, where)
    if not isinstance(prompt, str) or not isinstance(assistant, str):
        raise InputError(f"{where}: a turn's `content` is not a string")
    assistant = assistant.lstrip()  # "<think>" must open the turn to be read as its opener
    if not prompt.strip():
        raise InputError(f"{where}: empty user turn")
    if THINK_CLOSE not in assistant:
        raise InputError(f"{where}: the assistant turn has no <think>...</think> block")
    start, end = thinking_bounds(assistant)
    thinking = assistant[start:end].strip()
    answer = assistant[end + len(THINK_CLOSE):].strip()
    if not thinking:
        raise InputError(f"{where}: empty thinking")
    if not answer:
        raise InputError(f"{where}: empty answer after </think>")
    sample = parse_record(row, where)
    return Example(sample.id, where, prompt, thinking, answer), sample


def read_examples(paths: list[str], skip_bad: bool = False) -> ExampleSet:
    """Every example of `paths`; a bad record raises (or, with `skip_bad`, is listed in
    `skipped`)."""
    out = ExampleSet()
    for path in paths:
        samples = out.samples.setdefault(path, [])
        for where, row in record_rows(path):
            try:
                example, sample = example_of(row, where)
            except InputError as exc:
                if not skip_bad:
                    raise InputError(f"{exc} (--skip-bad leaves such records out)") from exc
                out.skipped.append(str(exc))
                continue
            out.examples.append(example)
            samples.append(sample)
    if not out.examples:
        raise InputError(f"{', '.join(paths)}: no usable records")
    return out
