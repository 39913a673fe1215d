"""A deterministic scripted model for tests and `--dry-run`.

Its next token depends only on the prompt, like a greedy language model: while thinking it writes
word `n` of its script, where `n` is the number of words already in the thinking (whoever wrote
them); after `</think>` it writes its answer, then stops. So asking for 10 tokens twice gives
the same text as asking for 20 once, which is what makes `stream` and `step` comparable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from tessy.backends.base import BackendCounters, Delta, GenerationRequest
from tessy.config import RoleConfig

STUDENT_SCRIPT = (
    "Okay, let's see. The problem gives two numbers and asks for their sum. "
    "Hmm, wait, let me check the numbers again. They are 17 and 25. "
    "So, adding them: 17 plus 25. Alright, I think that is 42. "
    "Let me verify: 40 plus 2 is 42. Yes, that seems right."
)
TEACHER_SCRIPT = (
    "We need the sum of 17 and 25. Tens: 10 + 20 = 30. Ones: 7 + 5 = 12. "
    "Total: 30 + 12 = 42. Check by subtraction: 42 - 25 = 17, consistent. "
    "Hence the sum is 42. Well, one more check: 25 + 17 = 42 by commutativity. "
    "So the result 42 holds."
)
SCRIPTS = {"student": STUDENT_SCRIPT, "teacher": TEACHER_SCRIPT}


class FakeBackend:
    """Scripted model; `delay` seconds per token imitates decode time."""

    tokenizer = None

    def __init__(
        self,
        config: RoleConfig | None = None,
        *,
        name: str = "fake",
        script: str = STUDENT_SCRIPT,
        answer: str = "The answer is 42.",
        end_marker: str = "</think>",
        delay: float = 0.0,
    ) -> None:
        if config is not None:  # `--teacher fake`: the role's script, or one named by --*-model
            name = f"fake-{config.role}"
            script = SCRIPTS.get(config.model or config.role, SCRIPTS[config.role])
        self.name = name
        self.words = script.split()
        self.answer_words = answer.split()
        self.end_marker = end_marker
        self.delay = delay
        self.requests: list[GenerationRequest] = []
        self.counters = BackendCounters()

    async def start(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        """Nothing to release."""

    async def count_tokens(self, text: str) -> int:
        """One token per whitespace-separated word."""
        return len(text.split())

    def next_token(self, prompt: str) -> str | None:
        """The token that follows `prompt`, or None for end of sequence."""
        thinking = prompt.rsplit("<think>", 1)[-1]
        if self.end_marker in thinking:
            done = thinking.split(self.end_marker, 1)[1].split()
            if done and done[0].endswith(":"):  # "Final answer:" style bridges
                done = done[1:]
            if len(done) >= len(self.answer_words):
                return None
            return " " + self.answer_words[len(done)]
        n = len(thinking.split())
        word = self.words[n] if n < len(self.words) else self.end_marker
        return word if not thinking.strip() else " " + word

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Yield one word-token at a time."""
        self.requests.append(request)
        self.counters.requests += 1
        text = ""
        for i in range(request.max_tokens):
            if self.delay:
                await asyncio.sleep(self.delay)
            token = self.next_token(request.prompt + text)
            if token is None:
                yield Delta("", 0, "stop", completion_tokens=i)
                return
            text += token
            hit = next((s for s in request.stop if s in text), None)
            if hit:
                yield Delta(token[: max(0, len(token) - len(text) + text.index(hit))], 1, "stop",
                            completion_tokens=i + 1)
                return
            yield Delta(token, 1)
        yield Delta("", 0, "length", completion_tokens=request.max_tokens)
