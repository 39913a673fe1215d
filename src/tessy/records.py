"""The domain words (problem, segment, trajectory) and the JSON record they become.

This module is the one owner of the record format: `build_record` writes a record and
`parse_record` reads one back (tessy's own, or any SFT chat record with `dialogs`/`messages`).
The assistant turn is `<think>\\n{thinking}\\n</think>\\n\\n{answer}` in the student's convention;
each segment and the answer store their `[start, end)` character offsets in it, so readers
never search the text for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from tessy.errors import InputError

Role = Literal["teacher", "student"]
ROLES: tuple[Role, Role] = ("teacher", "student")


THINK_OPEN, THINK_CLOSE = "<think>\n", "</think>"
ANSWER_SEP = "\n</think>\n\n"  # between the thinking and the answer in the assistant turn
GOLD_FIELDS = ("answer", "gold", "label", "correct_answer", "solution")
# Row fields that say how a response is graded (tessy.grading): code tests, a task's entry.
GRADING_FIELDS = ("grader", "test", "entry_point", "code_prompt", "tests", "gym_entry")


class FinishReason(StrEnum):
    """Why the thinking of a trajectory ended."""

    END_OF_THINKING = "end_of_thinking"  # a role wrote its end-of-thinking marker
    EOS = "eos"  # a role's model stopped (EOS) without a marker
    BUDGET = "budget"  # max_thinking_tokens spent
    MAX_TURNS = "max_turns"
    REPETITION = "repetition"  # the loop detector fired


def other(role: Role) -> Role:
    """The role that is not `role`."""
    return "student" if role == "teacher" else "teacher"


def prompt_id(prompt: str) -> str:
    """Stable id of a problem that has none: a short hash of its prompt."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    """One input problem: its id, the user prompt, and the record it came from."""

    id: str
    prompt: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = ""  # "file:line", for messages


@dataclass
class Segment:
    """A span of the trajectory written by one role; `n_tokens` in that role's tokenizer."""

    role: Role
    text: str
    n_tokens: int


@dataclass
class RoleStats:
    """What one role cost while writing a trajectory."""

    requests: int = 0
    generated_tokens: int = 0  # decoded by the server, kept or not
    kept_tokens: int = 0
    discarded_tokens: int = 0  # generated past a cut, then thrown away
    seconds: float = 0.0  # time spent waiting on this role's backend
    retries: int = 0
    resumed: int = 0  # turns that read on a request held open past a cut, instead of a new one


@dataclass
class Trajectory:
    """The cooperative (or single-role) reasoning trace of one problem."""

    problem: Problem
    strategy: str
    segments: list[Segment] = field(default_factory=list)
    answer: Segment | None = None
    finish_reason: FinishReason | None = None  # None while the thinking goes on
    answer_finish_reason: str = ""  # the server's: stop | length
    stats: dict[str, RoleStats] = field(default_factory=lambda: {r: RoleStats() for r in ROLES})
    seconds: float = 0.0

    @property
    def thinking(self) -> str:
        """The shared thinking text, all segments joined."""
        return "".join(s.text for s in self.segments)

    def role_at(self, char: int) -> Role:
        """Who wrote character `char` of the thinking (the last writer past its end)."""
        end = 0
        for segment in self.segments:
            end += len(segment.text)
            if char < end:
                return segment.role
        return self.segments[-1].role if self.segments else "teacher"

    def tail(self, chars: int) -> str:
        """The last `chars` characters of the thinking, without joining all of it."""
        parts, n = [], 0
        for seg in reversed(self.segments):
            if n >= chars:
                break
            parts.append(seg.text[n - chars:])  # only what is needed of it
            n += len(parts[-1])
        return "".join(reversed(parts))

    def append(self, role: Role, text: str, n_tokens: int) -> None:
        """Add text written by `role`, merging with the last segment when the role continues."""
        if not text:
            return
        if self.segments and self.segments[-1].role == role:
            self.segments[-1].text += text
            self.segments[-1].n_tokens += n_tokens
        else:
            self.segments.append(Segment(role, text, n_tokens))

    @property
    def switches(self) -> int:
        """How many times the writing role changed inside the thinking."""
        return max(0, len(self.segments) - 1)

    def tokens_by_role(self) -> dict[str, int]:
        """Thinking tokens per role, each in its own model's tokenizer."""
        counts = {r: 0 for r in ROLES}
        for seg in self.segments:
            counts[seg.role] += seg.n_tokens
        return counts

    def assistant_text(self) -> str:
        """The SFT target in the student's convention: `<think>\\n...\\n</think>\\n\\n{answer}`."""
        text, _, _ = assistant_layout(self.segments, self.answer)
        return text


def assistant_layout(segments: list[Segment], answer: Segment | None
                     ) -> tuple[str, list[tuple[int, int]], tuple[int, int]]:
    """The assistant turn, each segment's [start, end) in it, and the answer's.

    The thinking is the segments joined and stripped, so a segment's span is its place in the
    joined text, clipped to the stripped part (whitespace-only edges become empty spans).
    """
    thinking = "".join(s.text for s in segments)
    body = thinking.strip()
    lead = len(thinking) - len(thinking.lstrip())
    shift = len(THINK_OPEN) - lead
    spans, pos = [], 0
    for seg in segments:
        lo = min(max(pos, lead), lead + len(body))
        hi = min(max(pos + len(seg.text), lead), lead + len(body))
        spans.append((lo + shift, hi + shift))
        pos += len(seg.text)
    answer_text = answer.text.strip() if answer else ""
    head = f"{THINK_OPEN}{body}{ANSWER_SEP}"
    return head + answer_text, spans, (len(head), len(head) + len(answer_text))


def _segment_row(seg: Segment, span: tuple[int, int]) -> dict[str, Any]:
    return asdict(seg) | {"start": span[0], "end": span[1]}


def build_record(
    traj: Trajectory,
    *,
    chat_key: str,
    models: dict[str, str],
    config_hash: str,
    student_token_counts: dict[str, int] | None,
) -> dict[str, Any]:
    """The output JSON object of one finished trajectory."""
    problem = traj.problem
    assistant, spans, answer_span = assistant_layout(traj.segments, traj.answer)
    record = {k: v for k, v in problem.fields.items() if k not in ("dialogs", "messages", "tessy")}
    record["id"] = problem.id
    record[chat_key] = [
        {"role": "user", "content": problem.prompt},
        {"role": "assistant", "content": assistant},
    ]
    record["tessy"] = {
        "strategy": traj.strategy,
        "segments": [_segment_row(s, span) for s, span in zip(traj.segments, spans, strict=True)],
        "answer": _segment_row(traj.answer, answer_span) if traj.answer else None,
        "tokens": traj.tokens_by_role(),
        "student_tokens": student_token_counts,
        "switches": traj.switches,
        "requests": {r: traj.stats[r].requests for r in ROLES},
        "generated_tokens": {r: traj.stats[r].generated_tokens for r in ROLES},
        "discarded_tokens": {r: traj.stats[r].discarded_tokens for r in ROLES},
        "retries": {r: traj.stats[r].retries for r in ROLES},
        "seconds": {"total": round(traj.seconds, 3)}
        | {r: round(traj.stats[r].seconds, 3) for r in ROLES},
        "finish_reason": traj.finish_reason or "",
        "answer_finish_reason": traj.answer_finish_reason,
        "models": models,
        "config_hash": config_hash,
    }
    return record


# -- reading records back ------------------------------------------------------------------


@dataclass
class Span:
    """Characters [start, end) of the assistant text, written by `origin`."""

    origin: str  # student | teacher | unknown | answer
    start: int
    end: int


@dataclass
class Sample:
    """One record as readers see it: prompt, assistant text and who wrote which part of it."""

    id: str
    prompt: str
    assistant: str
    spans: list[Span]
    answer: str
    gold: str | None = None
    strategy: str = ""
    tokens: dict[str, int] = field(default_factory=dict)  # thinking tokens per role
    switches: int = 0
    grading: dict[str, Any] = field(default_factory=dict)  # the record's GRADING_FIELDS

    def pieces(self) -> list[tuple[str | None, str]]:
        """The assistant text cut at span edges, in order: (origin, or None for markup, text)."""
        out: list[tuple[str | None, str]] = []
        cursor = 0
        for span in sorted(self.spans, key=lambda s: s.start):
            out.append((None, self.assistant[cursor:span.start]))
            out.append((span.origin, self.assistant[span.start:span.end]))
            cursor = span.end
        out.append((None, self.assistant[cursor:]))
        return out

    @property
    def thinking(self) -> str:
        """The thinking characters (every span but the answer), joined."""
        return "".join(self.assistant[s.start:s.end] for s in self.spans if s.origin != "answer")


def chat_turns(record: dict[str, Any], where: str) -> tuple[str, str]:
    """(first user turn, last assistant turn) of a `dialogs`/`messages` record."""
    turns = record.get("dialogs") or record.get("messages")
    if not isinstance(turns, list):
        raise InputError(f"{where}: no `dialogs` or `messages` list")
    if not all(isinstance(t, dict) for t in turns):
        raise InputError(f"{where}: every turn of the conversation must be an object")
    user = next((t.get("content", "") for t in turns if t.get("role") == "user"), None)
    assistant = next((t.get("content", "") for t in reversed(turns)
                      if t.get("role") == "assistant"), None)
    if user is None or assistant is None:
        raise InputError(f"{where}: needs a user and an assistant turn")
    return user, assistant


def thinking_bounds(assistant: str) -> tuple[int, int]:
    """[start, end) of the thinking inside an assistant turn (empty when it has no `</think>`)."""
    start = len(THINK_OPEN) if assistant.startswith(THINK_OPEN) else 0
    close = assistant.find(THINK_CLOSE)
    return start, close if close >= 0 else start


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) narrowed to leave out whitespace at both edges."""
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    return start + lead, start + len(chunk.rstrip()) if chunk.strip() else start + lead


def _segment_spans(rows: list[dict[str, Any]]) -> list[Span]:
    """The thinking spans of a tessy record: stored, or (records written before offsets were
    stored) laid out again from its segments."""
    if all("start" in r for r in rows):
        return [Span(r["role"], r["start"], r["end"]) for r in rows]
    segments = [Segment(r["role"], r["text"], r.get("n_tokens", 0)) for r in rows]
    _, spans, _ = assistant_layout(segments, None)
    return [Span(s.role, a, b) for s, (a, b) in zip(segments, spans, strict=True)]


def _check_tessy_block(tessy: Any, size: int, where: str) -> None:
    """Refuse, in one line, a `tessy` block that is not the one tessy writes: readers index it."""
    if not isinstance(tessy, dict):
        raise InputError(f"{where}: `tessy` must be an object")
    segments = tessy.get("segments") or []
    answer = tessy.get("answer")
    if not isinstance(segments, list) or not (answer is None or isinstance(answer, dict)):
        raise InputError(f"{where}: `tessy.segments` must be a list and `tessy.answer` an object")
    for n, seg in enumerate([*segments, *([answer] if answer else [])]):
        name = f"tessy.segments[{n}]" if n < len(segments) else "tessy.answer"
        if not isinstance(seg, dict):
            raise InputError(f"{where}: `{name}` must be an object")
        if n < len(segments) and seg.get("role") not in ROLES:
            raise InputError(f"{where}: `{name}.role` is {seg.get('role')!r}, not teacher or "
                             "student")
        if n < len(segments) and "start" not in seg and not isinstance(seg.get("text"), str):
            raise InputError(f"{where}: `{name}` needs `start`/`end` or `text`")
        bounds = [seg.get(k) for k in ("start", "end") if k in seg]
        if bounds and not (len(bounds) == 2 and all(type(b) is int for b in bounds)
                           and 0 <= bounds[0] <= bounds[1] <= size):
            raise InputError(f"{where}: `{name}` offsets {bounds} are not in the assistant "
                             f"turn (0-{size})")
    for key in ("tokens", "student_tokens"):
        counts = tessy.get(key)
        if counts is not None and not (isinstance(counts, dict) and all(
                isinstance(v, int) for v in counts.values())):
            raise InputError(f"{where}: `tessy.{key}` must map roles to token counts")
    if not isinstance(tessy.get("switches", 0), int):
        raise InputError(f"{where}: `tessy.switches` must be an integer")


def parse_record(record: dict[str, Any], where: str) -> Sample:
    """One record (tessy's or any SFT chat record) as a Sample; `where` names it in errors."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: not a JSON object")
    prompt, assistant = chat_turns(record, where)
    tessy = record.get("tessy") or {}
    _check_tessy_block(tessy, len(assistant), where)
    body_start, think_end = thinking_bounds(assistant)
    close = assistant.find(THINK_CLOSE)
    answer_start, answer_end = _stripped(assistant, close + len(THINK_CLOSE) if close >= 0 else 0,
                                         len(assistant))
    if tessy.get("segments"):
        spans = [s for s in _segment_spans(tessy["segments"]) if s.end > s.start]
    else:
        start, end = _stripped(assistant, body_start, think_end)
        spans = [Span("unknown", start, end)] if end > start else []
    answer = tessy.get("answer") or {}
    if "start" in answer:
        answer_start, answer_end = answer["start"], answer["end"]
    if answer_end > answer_start:
        spans.append(Span("answer", answer_start, answer_end))
    gold = next((str(record[k]) for k in GOLD_FIELDS if record.get(k) not in (None, "")), None)
    return Sample(str(record.get("id", where)), prompt, assistant, spans,
                  assistant[answer_start:answer_end], gold, tessy.get("strategy", ""),
                  tessy.get("student_tokens") or tessy.get("tokens") or {},
                  int(tessy.get("switches", 0)),
                  {k: record[k] for k in GRADING_FIELDS if record.get(k) is not None})
