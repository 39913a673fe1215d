"""What the tests share: files of problems and records, the ids written, waiting on a condition."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path


def write_jsonl(path: Path, rows: list[dict]) -> str:
    """Write `rows` as JSONL to `path`; its name."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def problems_file(tmp_path: Path, n: int = 30, name: str = "problems.jsonl") -> Path:
    """`n` problems `q0` ... "What is i + 1?" in `tmp_path/name`."""
    path = tmp_path / name
    write_jsonl(path, [{"id": f"q{i}", "prompt": f"What is {i} + 1?"} for i in range(n)])
    return path


def run_args(data: str, out: Path, teacher: str, student: str, *extra: str) -> list[str]:
    """`tessy synthesize` of `data` into `out` with both roles on the given servers (qwen3)."""
    return ["synthesize", data, "-o", str(out), "-q", "--teacher", teacher, "--student", student,
            "--teacher-template", "qwen3", "--student-template", "qwen3", *extra]


def records(path: Path) -> list[dict]:
    """The records of an output; every line must be one whole JSON record (none if absent)."""
    raw = path.read_bytes() if path.exists() else b""
    assert not raw or raw.endswith(b"\n")  # whole records only
    return [json.loads(line) for line in raw.splitlines()]


def ids(path: Path) -> list[str]:
    """The ids of an output's records, in file order."""
    return [r["id"] for r in records(path)]


def trajectories(rows: list[dict]) -> dict[str, tuple]:
    """Each record's segments and answer by id: what must not change when a run is resumed."""
    return {r["id"]: (r["tessy"]["segments"], r["tessy"]["answer"]) for r in rows}


def wait_for(condition, timeout: float = 60.0) -> None:
    """Poll `condition()` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


async def until(condition, timeout: float = 30.0) -> None:
    """`wait_for` inside an event loop: yield to it between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
