"""One run of synthesis from its config: in this process, as one shard of many (`shard`), as
worker processes (`workers`) or as Ray tasks; the same `RunSummary` comes back from each.

`run_synthesis` is what `tessy synthesize` calls after parsing, and what a library user calls:

    summary = run_synthesis(RunConfig(inputs=["problems.jsonl"], output="out.jsonl", ...))

It reads the problems, leaves out those already written (in the output or any shard) and those
that failed for good under this config, merges shards an earlier run left, runs the rest and
records the attempt in `OUT.run.json`. What it says along the way (rows skipped, shards merged,
a signal received) goes to `say(text, level)`; the summary says the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from tessy import aio
from tessy.config import RunConfig
from tessy.errors import ConfigError
from tessy.escape import printable
from tessy.io import shards as shard_files
from tessy.io.jsonl import read_ids
from tessy.io.problems import ProblemReader, with_samples
from tessy.io.shards import Shard, finished_ids, locked, shard_dir
from tessy.io.writer import check_output, final_failures
from tessy.records import Problem
from tessy.secrets import credentials_from_env
from tessy.synthesis.summary import RunSummary

__all__ = ["RunSummary", "run_synthesis"]

Say = Callable[[str, str], None]  # (text, level): level is "info" or "warning"
log = logging.getLogger("tessy")


def log_say(text: str, level: str) -> None:
    """The default `say`: the `tessy` logger."""
    log.log(logging.WARNING if level == "warning" else logging.INFO, text)


def run_synthesis(config: RunConfig, *, ray: str | None = None, progress: bool | str = False,
                  progress_every: float = 30.0, say: Say = log_say,
                  handle_signals: bool = True) -> RunSummary:
    """Run `config` to its end and return what it did. `ray`: run the shards as Ray tasks on
    the cluster at that address ("auto": this machine's); `progress`: a `tessy.progress` style;
    `handle_signals`: SIGINT/SIGTERM stop new problems and checkpoint in-flight ones (the
    summary's `stopped` names the signal), a second one stops at once."""
    credentials_from_env(config)
    if not config.shard:  # a shard writes its own file (OUT.shards/K-of-N.jsonl)
        check_output(config.output, config.inputs)
    problems, skipped = read_problems(config)
    for line in skipped:
        say(f"skipped {printable(line)}", "warning")
    if config.workers > 1 or ray:
        if config.shard:
            raise ConfigError("--ray: runs every shard itself; leave out --shard")
        summary = _run_shards(config, problems, ray, progress, say)
    else:
        summary = _run_here(config, problems, progress, progress_every, say, handle_signals)
    summary.bad_rows = len(skipped)
    return summary


def read_problems(config: RunConfig) -> tuple[list[Problem], list[str]]:
    """The run's problems (`limit`, then `samples` of each) and the input rows skipped as bad."""
    reader = ProblemReader(config.inputs, config.prompt_template)
    problems = list(reader)
    if config.limit:
        problems = problems[: config.limit]
    return with_samples(problems, config.samples), reader.skipped


def left_to_do(config: RunConfig, main_output: str, problems: list[Problem],
               done: set[str] | None) -> tuple[list[Problem], set[str], set[str]]:
    """The problems a run goes through (those that failed for good under this config are left
    out unless `retry_failed`), the ids already written, and the ids left out."""
    finished = read_ids(Path(config.output)) | (done or set())
    failed: set[str] = set()
    if not config.retry_failed:
        key = config.config_hash()
        failed = (final_failures(main_output, key) | final_failures(config.output, key)) - finished
    failed &= {p.id for p in problems}
    return [p for p in problems if p.id not in failed], finished, failed


def sharded(config: RunConfig, problems: list[Problem], say: Say) -> tuple[
        RunConfig, list[Problem], set[str] | None, AbstractContextManager[None]]:
    """With `shard`: the config writing to the shard's file, the shard's problems, the ids every
    shard and the output hold already, and the shard's lock. Without: shards left by earlier
    runs are merged first."""
    if not config.shard:
        moved = shard_files.merge(config.output)
        if moved:
            say(f"merged {moved} records from {shard_dir(config.output)} into {config.output}",
                "info")
        return config, problems, None, nullcontext()
    shard = Shard.parse(config.shard)
    out = shard.output(config.output)
    return (dataclasses.replace(config, output=str(out)), [p for p in problems if shard.owns(p.id)],
            finished_ids(config.output), locked(out))


def _run_here(config: RunConfig, problems: list[Problem], progress: bool | str,
              progress_every: float, say: Say, handle_signals: bool) -> RunSummary:
    """The run (or the one shard of it `config.shard` names) in this process."""
    from tessy.synthesis.roles import open_roles
    from tessy.synthesis.run_loop import StopRequest, synthesize

    main_output = config.output
    config, problems, done, lock = sharded(config, problems, say)
    problems, finished, failed = left_to_do(config, main_output, problems, done)
    if not any(p.id not in finished for p in problems):
        return RunSummary(output=config.output, already_done=len(finished),
                          failed_before=len(failed))
    stop = StopRequest()

    def on_signal(name: str) -> None:
        if not stop.soft.is_set():
            say(f"{name}: no new problems; in-flight ones get {config.synthesis.grace:g}s to "
                "finish (signal again to stop at once)", "warning")
        stop(name)

    async def run() -> RunSummary:
        async with open_roles(config) as roles:  # a signal while loading just ends the process
            if handle_signals and threading.current_thread() is threading.main_thread():
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, on_signal, sig.name)
            return await synthesize(config, problems, roles, progress=progress, stop=stop,
                                    progress_every=progress_every, done=done)

    with lock:
        summary = aio.run(run())
    summary.failed_before = len(failed)
    return summary


def _run_shards(config: RunConfig, problems: list[Problem], ray: str | None,
                progress: bool | str, say: Say) -> RunSummary:
    """`workers` > 1 or `ray`: the run as shard processes or Ray tasks, merged at the end."""
    done = finished_ids(config.output)
    problems, _, failed = left_to_do(config, config.output, problems, done)
    todo = sum(p.id not in done for p in problems)
    if not todo:
        return RunSummary(output=config.output, already_done=len(done), failed_before=len(failed))
    if ray:
        from tessy.synthesis.ray_shards import run_on_ray

        summary = run_on_ray(config, ray, todo, progress=progress, say=say)
    else:
        from tessy.synthesis.workers import run_workers

        summary = run_workers(config, todo, progress=progress)
    summary.output, summary.todo, summary.on_ray = config.output, todo, bool(ray)
    summary.already_done, summary.failed_before = len(done), len(failed)
    return summary
