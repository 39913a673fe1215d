"""`RunSummary`: what a run did, local or spread over shards, and the one line that says so.

A run in this process fills it as problems finish; a run over shards (`--workers`, `--ray`)
adds up its shards' summaries (`RunSummary.combined`, read from their `K-of-N.jsonl.run.json`).
The fields up to `predictors` are what `OUT.run.json` records of an attempt (`attempt()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from tessy.records import ROLES

RECORDED = ("written", "failed", "already_done", "tokens", "seconds", "errors", "resumed",
            "in_flight", "stopped", "backends", "predictors")  # an attempt in `OUT.run.json`


@dataclass
class RunSummary:
    """What a run did: counts, time, why it stopped early; `line()` says it in one line."""

    written: int = 0
    failed: int = 0
    already_done: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {r: 0 for r in ROLES})
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    resumed: int = 0  # in-flight problems of a killed run, continued from their checkpoint
    in_flight: int = 0  # problems left unfinished (checkpointed) by a stop
    stopped: str = ""  # why the run stopped early: a signal name or a server outage
    backends: dict[str, dict[str, int]] = field(default_factory=dict)  # counters per role
    # How each role's predictor read (mode, calls, forwards); roles sharing a model share these
    predictors: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Not recorded per attempt: what the run as a whole adds
    output: str = ""  # the file written (a shard's own file under `--shard`)
    todo: int = 0  # problems this run set out to write (0: nothing to do)
    failed_before: int = 0  # problems left out: they failed for good under this config before
    bad_rows: int = 0  # input rows skipped as unreadable
    shards: list[int] = field(default_factory=list)  # exit code per shard process (--workers/--ray)
    on_ray: bool = False  # the shards ran as Ray tasks
    merged: int = 0  # shard records moved into the output

    def teacher_share(self) -> float:
        """Teacher tokens over all thinking tokens written this run."""
        total = sum(self.tokens.values())
        return self.tokens["teacher"] / total if total else 0.0

    def attempt(self) -> dict[str, Any]:
        """What `OUT.run.json` records of this attempt."""
        return {k: getattr(self, k) for k in RECORDED} | {"teacher_share": self.teacher_share()}

    @classmethod
    def from_attempt(cls, data: dict[str, Any]) -> RunSummary:
        """A summary from an attempt `OUT.run.json` recorded (keys it lacks keep their default)."""
        known = {f.name for f in fields(cls)} & set(RECORDED)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def combined(cls, parts: list[RunSummary]) -> RunSummary:
        """The summaries of shards that ran side by side, added up (seconds: the longest).
        Ids already done and the per-process counters (backends, predictors) are left to the
        caller: each shard's own stay in its `run.json`."""
        total = cls()
        for part in parts:
            for key in ("written", "failed", "resumed", "in_flight"):
                setattr(total, key, getattr(total, key) + getattr(part, key))
            for role, n in part.tokens.items():
                total.tokens[role] = total.tokens.get(role, 0) + n
            total.seconds = max(total.seconds, part.seconds)
            total.errors += part.errors
            total.stopped = total.stopped or part.stopped
        return total

    def line(self) -> str:
        """The run in one line: what it wrote, failed and skipped, and where."""
        if not self.todo:
            retry = (f", {self.failed_before} failed before (--retry-failed retries them)"
                     if self.failed_before else "")
            return f"nothing to do: {self.already_done} already done{retry} -> {self.output}"
        left = f", {self.failed_before} failed before (--retry-failed)" if self.failed_before else ""
        resumed = f", {self.resumed} continued from checkpoints" if self.resumed else ""
        by = f" by {len(self.shards)} {'Ray tasks' if self.on_ray else 'workers'}" if self.shards else ""
        merged = f"; {self.merged} merged" if self.shards else ""
        return (f"{self.written} written, {self.failed} failed{left}, {self.already_done} already "
                f"done, {self.bad_rows} bad rows{resumed}{by} -> {self.output} (teacher share "
                f"{self.teacher_share():.0%}, {self.seconds:.1f}s{merged})")
