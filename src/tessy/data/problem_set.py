"""`tessy problems`: a problem set with gold answers from named sources, split train /
held-out, with train problems that overlap the held-out or benchmark problems dropped.

Sources: `arithmetic` (tessy's own word problems and multiple-choice items), `humaneval`,
`gym:TASK` (any reasoning-gym task) and `codeio` (reasoning-gym's shipped CodeI/O data). Each
writes ordinary problem rows that say how they are graded (`tessy.grading`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessy.data.decontaminate import Overlap, overlaps, problem_text
from tessy.errors import InputError

SOURCES = ("arithmetic", "humaneval", "codeio", "gym:TASK")


@dataclass
class ProblemSet:
    """What `write_problem_set` wrote."""

    train: Path
    held_out: Path
    counts: dict[str, int] = field(default_factory=dict)  # rows per source
    dropped: list[Overlap] = field(default_factory=list)


def parse_sources(specs: list[str]) -> list[str]:
    """`gym:a,b` -> `gym:a`, `gym:b`; `codeio` -> `gym:codeio`; unknown names refused."""
    out = []
    for spec in specs:
        if spec.startswith("gym:"):
            tasks = [t.strip() for t in spec[4:].split(",") if t.strip()]
            if not tasks:
                raise InputError(f"--source {spec}: name a reasoning-gym task (gym:chain_sum)")
            out += [f"gym:{t}" for t in tasks]
        elif spec == "codeio":
            out.append("gym:codeio")
        elif spec in ("arithmetic", "humaneval"):
            out.append(spec)
        else:
            raise InputError(f"--source {spec!r}: not one of {', '.join(SOURCES)}")
    return out


def source_rows(source: str, count: int, seed: int, sandbox: str = "auto"
                ) -> list[dict[str, Any]]:
    """`count` rows of one source (HumanEval: at most its 164)."""
    if source == "arithmetic":
        from tessy.data.generate import generate

        train, held = generate(count, seed, 0.5)
        return train + held
    if source == "humaneval":
        from tessy.data.humaneval import humaneval_rows

        rows = humaneval_rows()
        random.Random(seed).shuffle(rows)
        return rows[:count]
    from tessy.data.gym import gym_rows
    from tessy.grading import open_executor

    executor = open_executor(sandbox)
    try:
        return gym_rows(executor, source[4:], count, seed)
    finally:
        executor.close()


def reference_texts(paths: list[str]) -> list[tuple[str, str]]:
    """(`file: id`, problem text) of every problem in the `--against` files."""
    from tessy.io.rows import read_rows

    refs = []
    for path in paths:
        for where, row in read_rows(path):
            if isinstance(row, dict) and problem_text(row):
                refs.append((f"{path}: {row.get('id', where)}", problem_text(row)))
    return refs


def write_problem_set(directory: str | Path, sources: list[str], count: int, seed: int = 0,
                      held_out: float = 0.2, against: list[str] | None = None,
                      threshold: float = 100.0, sandbox: str = "auto") -> ProblemSet:
    """Write DIR/train.jsonl and DIR/held_out.jsonl (and DIR/dropped.jsonl: the train
    problems left out as overlapping); refuses to overwrite, writes nothing on an error."""
    from tessy.io.jsonl import write_jsonl

    directory = Path(directory)
    paths = directory / "train.jsonl", directory / "held_out.jsonl"
    for path in paths:
        if path.exists():
            raise InputError(f"{path}: exists; choose another directory (nothing was written)")
    if count < 2:
        raise InputError("--count: must be >= 2 (a train and a held-out problem)")
    if not 0 < held_out < 1:
        raise InputError("--held-out: must be between 0 and 1")
    train: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    counts = {}
    for source in parse_sources(sources):
        rows = source_rows(source, count, seed, sandbox)
        random.Random(seed).shuffle(rows)
        cut = max(1, min(len(rows) - 1, round(len(rows) * held_out)))
        held += rows[:cut]
        train += rows[cut:]
        counts[source] = len(rows)
    refs = [(f"held-out: {r['id']}", problem_text(r)) for r in held]
    dropped = overlaps(train, refs + reference_texts(against or []), threshold)
    gone = {o.id for o in dropped}
    train = [r for r in train if str(r["id"]) not in gone]
    directory.mkdir(parents=True, exist_ok=True)
    write_jsonl(paths[0], train)
    write_jsonl(paths[1], held)
    if dropped:
        write_jsonl(directory / "dropped.jsonl", [
            {"id": o.id, "overlaps": o.reference, "similarity": o.similarity} for o in dropped])
    return ProblemSet(*paths, counts, dropped)
