"""SFT records as the report sees them: the assistant text with the origin of every character.

Records written by tessy carry their segments, so each span of the assistant text is known to
be the student's or the teacher's. Any other SFT JSONL (`dialogs` or `messages`) is read too:
its thinking has origin "unknown".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessy.errors import InputError
from tessy.io.export import read_jsonl

THINK_OPEN, THINK_CLOSE = "<think>\n", "</think>"
GOLD_FIELDS = ("answer", "gold", "label", "correct_answer", "solution")


@dataclass
class Span:
    """Characters [start, end) of the assistant text, written by `origin`."""

    origin: str  # student | teacher | unknown | answer
    start: int
    end: int


@dataclass
class Sample:
    """One record: prompt, assistant text and who wrote which part of it."""

    id: str
    prompt: str
    assistant: str
    spans: list[Span]
    answer: str
    gold: str | None = None
    strategy: str = ""
    tokens: dict[str, int] = field(default_factory=dict)  # thinking tokens per role
    switches: int = 0

    def text_of(self, origin: str) -> str:
        """All characters of one origin, joined."""
        return "".join(self.assistant[s.start:s.end] for s in self.spans if s.origin == origin)

    def pieces(self) -> list[tuple[str | None, str]]:
        """The assistant text cut at span edges, in order: (origin, or None for markup, text)."""
        out, cursor = [], 0
        for span in sorted(self.spans, key=lambda s: s.start):
            out.append((None, self.assistant[cursor:span.start]))
            out.append((span.origin, self.assistant[span.start:span.end]))
            cursor = span.end
        out.append((None, self.assistant[cursor:]))
        return out

    @property
    def thinking(self) -> str:
        return "".join(self.assistant[s.start:s.end] for s in self.spans if s.origin != "answer")


@dataclass
class Dataset:
    """A labelled list of samples (one input file)."""

    label: str
    path: str
    samples: list[Sample]

    @property
    def strategy(self) -> str:
        """The tessy strategy of its records, if all share one."""
        kinds = {s.strategy for s in self.samples}
        return kinds.pop() if len(kinds) == 1 else ""

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.samples}


def chat_turns(record: dict[str, Any], where: str) -> tuple[str, str]:
    """(first user turn, last assistant turn) of a `dialogs`/`messages` record."""
    turns = record.get("dialogs") or record.get("messages")
    if not isinstance(turns, list):
        raise InputError(f"{where}: no `dialogs` or `messages` list")
    user = next((t.get("content", "") for t in turns if t.get("role") == "user"), None)
    assistant = next((t.get("content", "") for t in reversed(turns)
                      if t.get("role") == "assistant"), None)
    if user is None or assistant is None:
        raise InputError(f"{where}: needs a user and an assistant turn")
    return user, assistant


def _locate(text: str, pieces: list[tuple[str, str]], start: int) -> list[Span]:
    """Spans of `pieces` (origin, text) found in order in `text` from `start`."""
    spans, cursor = [], start
    for i, (origin, piece) in enumerate(pieces):
        if i == 0:
            piece = piece.lstrip()
        if i == len(pieces) - 1:
            piece = piece.rstrip()
        pos = text.find(piece, cursor) if piece else -1
        if pos < 0:
            continue
        spans.append(Span(origin, pos, pos + len(piece)))
        cursor = pos + len(piece)
    return spans


def thinking_bounds(assistant: str) -> tuple[int, int]:
    """[start, end) of the thinking inside an assistant turn (empty when it has no `</think>`)."""
    start = len(THINK_OPEN) if assistant.startswith(THINK_OPEN) else 0
    close = assistant.find(THINK_CLOSE)
    return start, close if close >= 0 else start


def sample_from_record(record: dict[str, Any], where: str) -> Sample:
    """One record (tessy's or any SFT chat record) as a Sample."""
    prompt, assistant = chat_turns(record, where)
    tessy = record.get("tessy") or {}
    close = assistant.find(THINK_CLOSE)
    body_start, think_end = thinking_bounds(assistant)
    answer_start = close + len(THINK_CLOSE) if close >= 0 else 0
    answer = assistant[answer_start:].strip()
    segments = tessy.get("segments") or []
    if segments:
        spans = _locate(assistant[:think_end], [(s["role"], s["text"]) for s in segments],
                        body_start)
    else:
        body = assistant[body_start:think_end]
        lead = len(body) - len(body.lstrip())
        spans = [Span("unknown", body_start + lead, body_start + len(body.rstrip()))] if body.strip() else []
    if answer:
        pos = assistant.find(answer, answer_start)
        spans.append(Span("answer", pos, pos + len(answer)))
    gold = next((str(record[k]) for k in GOLD_FIELDS if record.get(k) not in (None, "")), None)
    return Sample(str(record.get("id", where)), prompt, assistant, spans, answer, gold,
                  tessy.get("strategy", ""), tessy.get("student_tokens") or tessy.get("tokens") or {},
                  int(tessy.get("switches", 0)))


def load_dataset(path: str, label: str | None = None) -> Dataset:
    """Read one JSONL file of records; a bad record raises with file:line."""
    samples = []
    for i, record in read_jsonl(path):
        if not isinstance(record, dict):
            raise InputError(f"{path}:{i}: not a JSON object")
        samples.append(sample_from_record(record, f"{path}:{i}"))
    return Dataset(label or _label(path), path, samples)


def _label(path: str) -> str:
    return re.sub(r"\.jsonl?$", "", Path(path).name)
