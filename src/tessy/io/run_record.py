"""`OUT.run.json`: the figures of every attempt at a run, so a rerun adds to them.

The top level keeps the latest attempt's figures (what shard summaries and benchmarks read);
`attempts` lists every attempt, oldest first, and `totals` adds them up. A rerun that finds
nothing to do is not an attempt and leaves the file as it was.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tessy.io.jsonl import write_json
from tessy.io.run_files import RunFiles
from tessy.records import ROLES

log = logging.getLogger("tessy")
SUMMED = ("written", "failed", "resumed", "seconds")


def read_attempts(path: Path) -> list[dict[str, Any]]:
    """The attempts recorded so far (a record written before attempts were kept is one)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("%s: unreadable (%s); its earlier attempts are not counted", path, exc)
        return []
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("attempts"), list):
        return data["attempts"]
    return [data]


def totals(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """The attempts added up; `failed` counts failures of every attempt, a retried one again."""
    out: dict[str, Any] = {"attempts": len(attempts)}
    for key in SUMMED:
        out[key] = sum(a.get(key, 0) for a in attempts)
    out["seconds"] = round(out["seconds"], 3)
    out["tokens"] = {r: sum(a.get("tokens", {}).get(r, 0) for a in attempts) for r in ROLES}
    thinking = sum(out["tokens"].values())
    out["teacher_share"] = out["tokens"]["teacher"] / thinking if thinking else 0.0
    return out


def record_attempt(output: str | Path, attempt: dict[str, Any]) -> dict[str, Any]:
    """Add `attempt` to the run record beside `output` (atomically); the record written."""
    path = RunFiles(output).run_record
    attempts = [*read_attempts(path), attempt | {"finished": _now()}]
    data = attempts[-1] | {"attempts": attempts, "totals": totals(attempts)}
    write_json(path, data)
    return data


def finished_at(attempt: dict[str, Any]) -> float:
    """When `attempt` was recorded (epoch seconds); 0 for one recorded before attempts were
    stamped."""
    import datetime

    try:
        return datetime.datetime.fromisoformat(attempt["finished"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
