"""The loop of a run over its problems: one asyncio task per problem, bounded, no global
barrier, resumable (how requests are paced, `--scheduler`, is `pacing.py`).

Finished records are appended durably as they finish; a re-run skips their ids, continues
checkpointed in-flight problems from their last turn and re-does failed problems. A failed
problem becomes an error row; only a server that stays away stops the run. A StopRequest
(SIGINT/SIGTERM) stops new problems and gives in-flight ones a grace period. `OUT.run.json`
keeps every attempt's figures (`io/run_record.py`): counts, seconds, and each backend's
requests, bytes and cached tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tessy.boundary.base import BoundaryPredictor
from tessy.config import RunConfig
from tessy.errors import GenerationError, RequestRejected, ServerUnavailable, TransientBackendError
from tessy.io.jsonl import write_json
from tessy.io.run_files import RunFiles
from tessy.io.run_record import record_attempt
from tessy.io.writer import RecordWriter
from tessy.progress import Progress
from tessy.records import ROLES, Problem, Trajectory, build_record
from tessy.secrets import redact
from tessy.synthesis.checkpoint import CheckpointLog
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.pacing import make_pacing
from tessy.synthesis.roles import RoleRuntime
from tessy.synthesis.summary import RunSummary

__all__ = ["StopRequest", "synthesize"]


def predictor_summary(predictor: BoundaryPredictor, every: int | None) -> dict[str, Any]:
    """What a role's predictor is and how it read: the mode `auto` chose, calls, forwards."""
    return {"name": predictor.name, "every": every or predictor.default_every} | predictor.reading()


class StopRequest:
    """Set from signal handlers: the first stops new problems, the second stops at once."""

    def __init__(self) -> None:
        self.soft = asyncio.Event()
        self.hard = asyncio.Event()
        self.reason = ""

    def __call__(self, reason: str) -> None:
        if self.soft.is_set():
            self.hard.set()
        else:
            self.reason = reason
            self.soft.set()


def save_effective_config(config: RunConfig) -> Path:
    """Write the run's full config beside the output (atomically)."""
    path = RunFiles(config.output).config
    write_json(path, config.to_dict() | {"config_hash": config.config_hash()})
    return path


async def student_counts(traj: Trajectory, roles: dict[str, RoleRuntime]) -> dict[str, int] | None:
    """Thinking tokens per role counted in the student's tokenizer (None if it cannot count)."""
    backend = roles["student"].backend
    counts: dict[str, int] = {}
    for role in ROLES:
        text = "".join(s.text for s in traj.segments if s.role == role)
        n = await backend.count_tokens(text) if text else 0
        if n is None:
            return None
        counts[role] = n
    return counts


async def synthesize(
    config: RunConfig, problems: Iterable[Problem], roles: dict[str, RoleRuntime],
    progress: bool | str = True, stop: StopRequest | None = None, done: set[str] | None = None,
    progress_every: float = 30.0,
) -> RunSummary:
    """Write a trajectory for every problem not already in the output (nor in `done`: ids
    finished elsewhere, e.g. by other shards of the run). `progress`: a `tessy.progress` style
    (True: auto, False: none); log-line styles write one line per `progress_every` seconds."""
    save_effective_config(config)
    stop = stop or StopRequest()
    summary = RunSummary(output=config.output)
    config_hash = config.config_hash()
    writers = {"teacher-only": ("teacher",), "student-only": ("student",)}
    models = {r: config.role(r).model_name or roles[r].backend.name
              for r in writers.get(config.synthesis.strategy, ROLES)}
    started = time.perf_counter()
    running: set[str] = set()  # ids started and not yet written (or failed)
    with RecordWriter(config.output, config_hash) as writer:
        writer.done |= done or set()
        checkpoints = CheckpointLog(config.output, config_hash, writer.done)
        engine = Cooperation(roles, config.synthesis, on_turn=checkpoints.save_turn,
                             pacing=make_pacing(config.synthesis.scheduler))
        todo = [p for p in problems if p.id not in writer.done]
        summary.already_done, summary.todo = len(writer.done), len(todo)
        bar = Progress(len(todo), "problems", "problem", progress, progress_every)

        async def one(problem: Problem) -> None:
            running.add(problem.id)
            resume = checkpoints.resume(problem, config.synthesis.strategy)
            summary.resumed += resume is not None
            try:
                traj = await engine.run(problem, resume)
                counts = await student_counts(traj, roles)
            except (GenerationError, RequestRejected) as exc:
                reason = redact(str(exc))  # a server's error body may echo a token
                # Retries spent on a server's failures may go better next run; the rest recur.
                final = not isinstance(exc.__cause__, TransientBackendError)
                writer.write_error(problem.id, problem.source, reason, final=final)
                summary.failed += 1
                summary.errors.append(f"{problem.id}: {reason}")
            else:
                writer.write(build_record(traj, chat_key=config.chat_key, models=models,
                                          config_hash=config_hash, student_token_counts=counts))
                summary.written += 1
                for role, n in traj.tokens_by_role().items():
                    summary.tokens[role] += n
            checkpoints.forget(problem.id)
            running.discard(problem.id)
            _update_bar(bar, summary, started)

        try:
            await _run_bounded(todo, one, config.synthesis.concurrency, stop,
                               config.synthesis.grace)
        except ServerUnavailable as exc:
            summary.stopped = redact(str(exc))
        finally:
            bar.close()
            summary.in_flight = len(running)
            checkpoints.close(in_flight=bool(running))
    if stop.soft.is_set() and not summary.stopped:
        summary.stopped = stop.reason
    summary.seconds = time.perf_counter() - started
    summary.backends = {r: asdict(roles[r].backend.counters) for r in ROLES}
    summary.predictors = {r: predictor_summary(roles[r].predictor, config.synthesis.predict_every)
                          for r in ROLES}
    record_attempt(config.output, summary.attempt())
    return summary


async def _run_bounded(problems: list[Problem], work: Callable[[Problem], Coroutine[Any, Any, None]],
                       limit: int, stop: StopRequest,
                       grace: float) -> None:
    """At most `limit` problems in flight; a new one starts as soon as any finishes.

    After `stop.soft`, nothing new starts and in-flight problems get `grace` seconds (less if
    `stop.hard` comes) before they are cancelled; their turn checkpoints are kept.
    """
    pending: set[asyncio.Task[None]] = set()
    it = iter(problems)
    soft = asyncio.ensure_future(stop.soft.wait())
    hard = asyncio.ensure_future(stop.hard.wait())
    try:
        while not stop.soft.is_set():
            while len(pending) < limit and (problem := next(it, None)) is not None:
                pending.add(asyncio.create_task(work(problem)))
            if not pending:
                return
            pending = await _wait_some(pending, soft)
        deadline = asyncio.get_running_loop().time() + grace
        while pending and not stop.hard.is_set():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            pending = await _wait_some(pending, hard, left)
    finally:
        for task in (*pending, soft, hard):
            task.cancel()
        await asyncio.gather(*pending, soft, hard, return_exceptions=True)


async def _wait_some(pending: set[asyncio.Task[None]], wake: asyncio.Future[Any],
                     timeout: float | None = None) -> set[asyncio.Task[None]]:
    """Wait until a task finishes (or `wake` fires, or the timeout); return the unfinished."""
    done, _ = await asyncio.wait(pending | {wake}, timeout=timeout,
                                 return_when=asyncio.FIRST_COMPLETED)
    for task in done - {wake}:
        task.result()  # a bug or a server that stays away stops the run here
    return pending - done


def _update_bar(bar: Progress, summary: RunSummary, started: float) -> None:
    elapsed = max(1e-9, time.perf_counter() - started)
    bar.update(1, tok_s=round(sum(summary.tokens.values()) / elapsed, 1),
               teacher=f"{summary.teacher_share():.0%}", failed=summary.failed)
