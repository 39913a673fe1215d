"""The domain words: problem, segment, trajectory, and the JSON record they become."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["teacher", "student"]
ROLES: tuple[Role, Role] = ("teacher", "student")


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


@dataclass
class Trajectory:
    """The cooperative (or single-role) reasoning trace of one problem."""

    problem: Problem
    strategy: str
    segments: list[Segment] = field(default_factory=list)
    answer: Segment | None = None
    finish_reason: str = ""  # end_of_thinking | budget | max_turns | repetition | ...
    answer_finish_reason: str = ""
    stats: dict[str, RoleStats] = field(default_factory=lambda: {r: RoleStats() for r in ROLES})
    seconds: float = 0.0

    @property
    def thinking(self) -> str:
        """The shared thinking text, all segments joined."""
        return "".join(s.text for s in self.segments)

    def tail(self, chars: int) -> str:
        """The last `chars` characters of the thinking, without joining all of it."""
        parts, n = [], 0
        for seg in reversed(self.segments):
            parts.append(seg.text)
            n += len(seg.text)
            if n >= chars:
                break
        return "".join(reversed(parts))[-chars:] if chars else ""

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
        answer = self.answer.text.strip() if self.answer else ""
        return f"<think>\n{self.thinking.strip()}\n</think>\n\n{answer}"


def build_record(
    traj: Trajectory,
    *,
    chat_key: str,
    models: dict[str, str],
    config_hash: str,
    student_token_counts: dict[str, int] | None,
) -> dict[str, Any]:
    """The output JSON object of one finished trajectory (DESIGN.md §5)."""
    problem = traj.problem
    record = {k: v for k, v in problem.fields.items() if k not in ("dialogs", "messages", "tessy")}
    record["id"] = problem.id
    record[chat_key] = [
        {"role": "user", "content": problem.prompt},
        {"role": "assistant", "content": traj.assistant_text()},
    ]
    record["tessy"] = {
        "strategy": traj.strategy,
        "segments": [asdict(s) for s in traj.segments],
        "answer": asdict(traj.answer) if traj.answer else None,
        "tokens": traj.tokens_by_role(),
        "student_tokens": student_token_counts,
        "switches": traj.switches,
        "requests": {r: traj.stats[r].requests for r in ROLES},
        "generated_tokens": {r: traj.stats[r].generated_tokens for r in ROLES},
        "discarded_tokens": {r: traj.stats[r].discarded_tokens for r in ROLES},
        "retries": {r: traj.stats[r].retries for r in ROLES},
        "seconds": {"total": round(traj.seconds, 3)}
        | {r: round(traj.stats[r].seconds, 3) for r in ROLES},
        "finish_reason": traj.finish_reason,
        "answer_finish_reason": traj.answer_finish_reason,
        "models": models,
        "config_hash": config_hash,
    }
    return record
