"""What runs untrusted programs, as an interface: an `Executor` runs one `Job` (a Python
program and its stdin, under `Limits`) and says what it did (`Outcome`); `run_jobs` runs many,
at most one per core. `sandbox.LocalSandbox` and `remote.SandboxFusion` implement it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_SIGNALS = {s.value for s in signal.Signals}


@dataclass(frozen=True)
class Limits:
    """What one job may use."""

    cpu_seconds: int = 10
    wall_seconds: float = 20.0
    memory_mb: int = 2048  # address space; Python needs ~50 MB of it to start
    file_mb: int = 16  # any file it writes, its stdout and stderr included
    processes: int = 64
    output_chars: int = 1 << 20  # kept of stdout and of stderr


@dataclass(frozen=True)
class Job:
    """A Python program and what it reads on stdin."""

    program: str
    stdin: str = ""
    limits: Limits = Limits()


@dataclass
class Outcome:
    """What a job did. `returncode` < 0 is the signal that ended it (POSIX convention)."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    seconds: float = 0.0
    error: str = ""  # the sandbox itself failed (the job did not run, or not to its end)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error

    def why(self) -> str:
        """One line: why the job failed ("" when it did not)."""
        if self.error:
            return self.error
        if self.timed_out:
            return "wall timeout"
        code = self.returncode or 0
        if code > 128 and code - 128 in _SIGNALS:  # bwrap and sh report a signal as 128 + N
            code = 128 - code
        if code < 0:
            name = signal.Signals(-code).name if -code in _SIGNALS else ""
            return {"SIGXCPU": "CPU time limit", "SIGXFSZ": "output or file size limit",
                    "SIGKILL": "killed (memory or process limit)"}.get(name, f"signal {name}")
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        if "MemoryError" in (lines[-1] if lines else ""):
            return "memory limit"
        return lines[-1][:200] if lines else f"exit code {self.returncode}"


class Executor(Protocol):
    """Runs one job to its end; must be safe to call from several threads at once."""

    name: str

    def run(self, job: Job) -> Outcome: ...

    def close(self) -> None: ...


def run_jobs(executor: Executor, jobs: Iterable[Job], workers: int | None = None) -> list[Outcome]:
    """Every job's outcome, in order, at most `workers` at a time (default: the cores)."""
    return on_cores(executor.run, jobs, workers)


def on_cores(work: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """`work` of every item, in order, from at most `workers` threads (default: the cores): the
    one place that caps how many sandboxed jobs run at once."""
    with ThreadPoolExecutor(max_workers=workers or cores()) as pool:
        return list(pool.map(work, items))


def cores() -> int:
    """The cores this process may run on (at most one sandboxed job per core)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere all the CPUs
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def read_head(path: Path, chars: int) -> str:
    """The first `chars` characters of a file a job wrote (never more is read)."""
    try:
        with open(path, "rb") as f:
            return f.read(chars * 4).decode("utf-8", "replace")[:chars]
    except OSError:
        return ""
