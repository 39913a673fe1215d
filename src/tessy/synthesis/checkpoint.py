"""Checkpoints of in-flight trajectories: a killed run continues them instead of starting over.

`<output>.partial.jsonl` gets one line after every turn with only the text that turn added,
so the file grows with the text written, not with turns x trace length. Lines are appended
with one `write` each (they survive a killed process; only finished records are fsynced).
On open the file is compacted to the problems still unfinished; lines from another config
(different `config_hash`) are dropped, since their text was written under other settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tessy.io.jsonl import AppendLog, write_jsonl
from tessy.io.run_files import RunFiles
from tessy.records import FinishReason, Problem, RoleStats, Trajectory
from tessy.synthesis.cooperate import Resume


class CheckpointLog:
    """Appends turn checkpoints; `resume(problem)` rebuilds where a problem left off."""

    def __init__(self, output: str | Path, config_hash: str, done: set[str]) -> None:
        self.path = RunFiles(output).checkpoints
        self.config_hash = config_hash
        self.saved: dict[str, list[dict[str, Any]]] = self._load(done)
        self._logged: dict[str, tuple[int, int, int]] = {}  # id -> (segment, chars, tokens)
        # Compacted: unfinished problems only.
        write_jsonl(self.path, (r for rows in self.saved.values() for r in rows))
        self._log = AppendLog(self.path)

    def _load(self, done: set[str]) -> dict[str, list[dict[str, Any]]]:
        saved: dict[str, list[dict[str, Any]]] = {}
        if not self.path.exists():
            return saved
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    pid, turn = str(row["id"]), int(row["turn"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by the kill
                if pid in done or row.get("config_hash") != self.config_hash:
                    continue
                rows = saved.setdefault(pid, [])
                del rows[turn - 1:]  # a restarted attempt overwrites later turns
                if len(rows) == turn - 1:
                    rows.append(row)
        return saved

    def resume(self, problem: Problem, strategy: str) -> Resume | None:
        """The checkpointed state of `problem`, or None to start it fresh."""
        rows = self.saved.pop(problem.id, None)
        if not rows:
            return None
        traj = Trajectory(problem, strategy)
        for row in rows:
            for role, text, n_tokens in row["add"]:
                traj.append(role, text, n_tokens)
        last = rows[-1]
        traj.finish_reason = FinishReason(last["finish"]) if last["finish"] else None
        traj.stats = {r: RoleStats(**s) for r, s in last["stats"].items()}
        self._logged[problem.id] = self._position(traj)
        return Resume(traj, int(last["turn"]), last["next"])

    @staticmethod
    def _position(traj: Trajectory) -> tuple[int, int, int]:
        if not traj.segments:
            return (0, 0, 0)
        last = traj.segments[-1]
        return (len(traj.segments) - 1, len(last.text), last.n_tokens)

    def save_turn(self, traj: Trajectory, turns: int, next_role: str) -> None:
        """Append what the last turn added to `traj`."""
        pid = traj.problem.id
        seg, chars, tokens = (0, 0, 0) if turns == 1 else self._logged.get(pid, (0, 0, 0))
        add = []
        for i, s in enumerate(traj.segments[seg:], start=seg):
            text, n = (s.text[chars:], s.n_tokens - tokens) if i == seg else (s.text, s.n_tokens)
            if text:
                add.append([s.role, text, n])
        row = {"id": pid, "turn": turns, "add": add, "next": next_role,
               "finish": traj.finish_reason or "", "stats": {r: vars(s) for r, s in traj.stats.items()},
               "config_hash": self.config_hash}
        self._log.append(row, fsync=False)
        self._logged[pid] = self._position(traj)

    def forget(self, problem_id: str) -> None:
        """The problem's record is written: its checkpoints are dead weight from now on."""
        self._logged.pop(problem_id, None)

    def close(self, *, in_flight: bool) -> None:
        """Close; remove the file when nothing is left to continue."""
        self._log.close()
        if not in_flight and not self.saved:
            self.path.unlink(missing_ok=True)
