"""`--workers N`: one run as N client processes on this machine, one shard each.

A client process tops out at one core (BENCHMARKS.md: ~21 µs per streamed token for plain
generation, ~48 in stream mode); past that, more processes. Each worker is an ordinary
`tessy synthesize --config RUN.json --shard K/N`, so it resumes, checkpoints and stops like any
run. The parent shows one progress bar fed by the shard files as they grow, forwards SIGINT and
SIGTERM, and merges the shards into the output once every worker has finished. Workers die with
the parent (Linux `PR_SET_PDEATHSIG`), so a rerun after a kill -9 meets no stray writer; each
shard is locked besides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tessy.config import RunConfig
from tessy.io.jsonl import write_json
from tessy.io.run_files import RunFiles
from tessy.io.run_record import finished_at, read_attempts
from tessy.io.shards import Shard, merge
from tessy.progress import Progress
from tessy.synthesis.summary import RunSummary

POLL_SECONDS = 0.25


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a worker outlives a killed parent, and its shard lock stops a rerun


class LineCounter:
    """Whole lines appended to a file since the start, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def poll(self) -> int:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


# tessy's own settings read from the environment (credentials aside: `shard_env`); a worker
# on a remote node must behave like this process, so it gets them (tests/test_shards.py checks
# that every TESSY_ variable the source reads is here or a credential).
SETTINGS = ("TESSY_CACHE", "TESSY_EVENT_LOOP", "TESSY_LLAMA_SERVER", "TESSY_TRACEBACK")


def shard_env(config: RunConfig) -> dict[str, str]:
    """What a worker gets of this process's environment beyond its own, on a remote node too:
    tessy's settings and the variables that carry each role's credentials (`tessy.secrets`),
    by name; nothing else (another service's token stays on this machine)."""
    return {name: os.environ[name] for name in SETTINGS if name in os.environ} | config.credentials()


def child_config(config: RunConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The workers' config (no secrets in it) and their environment (`shard_env`)."""
    data = config.to_dict() | {"workers": 1, "shard": None}
    # Absolute paths: a worker may run in another directory (a Ray worker does).
    data["output"] = str(Path(config.output).resolve())
    data["inputs"] = [str(Path(i).resolve()) if Path(i).exists() else i for i in config.inputs]
    return data, shard_env(config)


def shard_command(config_path: Path, shard: Shard) -> list[str]:
    """The command that runs one shard of the run described by `config_path`."""
    return [sys.executable, "-m", "tessy", "synthesize", "--config", str(config_path),
            "--shard", f"{shard.index}/{shard.count}", "-q", "--allow-failures"]  # the parent decides


def run_shard(config_path: Path, shard: Shard, output: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one shard process (it dies with this process), logging beside its records."""
    with open(shard.files(output).log, "ab") as log:
        return subprocess.Popen(shard_command(config_path, shard), stdout=log,
                                stderr=subprocess.STDOUT, env=os.environ | env,
                                preexec_fn=_die_with_parent)


def prepare(config: RunConfig, n: int) -> tuple[Path, dict[str, str], list[Shard]]:
    """The workers' config file beside the shards, their environment, and the shards."""
    files = RunFiles(config.output)
    files.shards.mkdir(parents=True, exist_ok=True)
    data, env = child_config(config)
    config_path = files.shards_config
    write_json(config_path, data)
    return config_path, env, [Shard(k, n) for k in range(1, n + 1)]


def finish(config: RunConfig, config_path: Path, shards: list[Shard], codes: list[int]) -> RunSummary:
    """The shard summaries added up, with each shard's exit code (negative: killed by that
    signal); merged when every shard succeeded."""
    since = int(config_path.stat().st_mtime)  # written by `prepare`, as this run began
    summary = RunSummary.combined([_summary(s.files(config.output).run_record, since)
                                   for s in shards])
    summary.shards = codes
    if all(code == 0 for code in codes):
        config_path.unlink(missing_ok=True)
        summary.merged = merge(config.output)
    return summary


def run_workers(config: RunConfig, todo: int, progress: bool | str = True) -> RunSummary:
    """Run `config` as `config.workers` shard processes; merge when all of them succeed."""
    config_path, env, shards = prepare(config, config.workers)
    procs = [run_shard(config_path, shard, config.output, env) for shard in shards]

    def forward(signum: int, frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        watch(lambda: any(p.poll() is None for p in procs), shards, config.output, todo, progress)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return finish(config, config_path, shards, [p.wait() for p in procs])


def watch(alive: Callable[[], bool], shards: list[Shard], output: str, todo: int,
          progress: bool | str) -> None:
    """One progress bar (or log line, `tessy.progress`) over every shard's records while `alive()`."""
    written = [LineCounter(s.output(output)) for s in shards]
    failed = [LineCounter(s.files(output).errors) for s in shards]
    start = [c.poll() for c in written]  # records of earlier runs are not this run's progress
    bar = Progress(todo, f"{len(shards)} shards", "problem", progress)
    try:
        while True:
            running = alive()
            done = sum(c.poll() - s for c, s in zip(written, start, strict=True))
            bar.set(done, failed=sum(c.poll() for c in failed))
            if not running:
                return
            time.sleep(POLL_SECONDS)
    finally:
        bar.close()


def _summary(path: Path, since: float) -> RunSummary:
    """A shard's latest attempt (`K-of-N.jsonl.run.json`) if it finished in this run (`since`:
    the run's start, epoch seconds); empty if it recorded none since (an earlier run's figures
    are not this run's)."""
    attempts = read_attempts(path)
    if not attempts or finished_at(attempts[-1]) < since:
        return RunSummary()
    return RunSummary.from_attempt(attempts[-1])
