"""`--answer-from thinking`: the answer of an instruct model that answered inside the thinking."""

from __future__ import annotations

from conftest import fake_roles
from tessy.config import SynthesisConfig
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.read_answer import read_answer


def test_the_last_code_block_wins():
    thinking = ("Plan.\n```python\ndef f(): return 1\n```\nBetter:\n"
                "```python\ndef f():\n    return 2\n```\nDone.")
    text, start = read_answer(thinking)
    assert text == "```python\ndef f():\n    return 2\n```"
    assert thinking[start:].startswith(text)


def test_else_the_last_answer_line_else_the_last_line():
    assert read_answer("17 * 24 = 408\n408 - 38 = 370\nAnswer: 370\n")[0] == "Answer: 370"
    assert read_answer("x\n**Final answer:** 42\nthat is all")[0] == "**Final answer:** 42"
    assert read_answer("The answer is 7.\n\n  It holds.  \n")[0] == "It holds."
    assert read_answer("") == ("", 0)


async def test_cooperation_reads_an_unclosed_thinking_and_asks_for_a_closed_one():
    roles = fake_roles()
    unclosed = await Cooperation(roles, SynthesisConfig(answer_from="thinking",
                                                        max_thinking_tokens=30)).run(Problem("p", "17 + 25?"))
    assert unclosed.finish_reason == "budget"
    assert unclosed.answer.n_tokens == 0 and unclosed.answer_finish_reason == "read"
    assert unclosed.thinking.rstrip().endswith(unclosed.answer.text)
    assert unclosed.answer.role == unclosed.segments[0].role  # one line: it starts with the student
    closed = await Cooperation(roles, SynthesisConfig(answer_from="thinking")).run(Problem("p", "17 + 25?"))
    assert closed.finish_reason == "end_of_thinking"
    assert closed.answer.text == "The answer is 42." and closed.answer_finish_reason == "stop"
