"""One trajectory: teacher and student take turns writing one thinking trace (docs/DESIGN.md).

The student starts. Each turn continues `role template + shared thinking`; a TurnWatcher finds
the cut; on a cut the roles switch, otherwise the role goes on. At the end of thinking the answer
role writes the final answer in one go. Baselines (`teacher-only`, `student-only`) are the same
loop with one role and no cuts.

A student that keeps nothing hands the floor straight back, and the teacher would ask again for
what it was writing when it was cut. So, once the student's last turn kept nothing, the teacher's
next cut leaves its request open (`hold_teacher`): if the student keeps nothing again, the
teacher reads on from its cut, else the request is closed (stream mode, free pacing).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from tessy.backends.base import Delta, GenerationRequest
from tessy.boundary.base import BoundaryPredictor, PredictorSession
from tessy.boundary.cut import Decision, TurnWatcher
from tessy.config import SynthesisConfig
from tessy.errors import GenerationError, TransientBackendError
from tessy.records import FinishReason, Problem, Role, RoleStats, Segment, Trajectory, other
from tessy.retries import Attempts, RetryPolicy, ServerHealth
from tessy.synthesis.guards import is_looping
from tessy.synthesis.pacing import FreePacing, Pacing
from tessy.synthesis.read_answer import read_answer
from tessy.synthesis.roles import RoleRuntime


@dataclass
class TurnResult:
    """What a turn added: `keep` chars of the watcher's text, and why it ended."""

    text: str
    n_tokens: int
    cut: bool  # the predictor found a boundary: the other role goes next
    reason: FinishReason | None  # the thinking ended; None: it goes on


@dataclass
class Resume:
    """Where a checkpointed trajectory left off: its turns so far and who writes next."""

    traj: Trajectory
    turns: int
    role: Role


# Called after every turn with (trajectory, turns so far, role of the next turn).
TurnHook = Callable[[Trajectory, int, Role], None]


@dataclass
class Held:
    """The teacher's request left open past its cut while the student tries."""

    stream: AsyncGenerator[Delta, None]
    text: str  # arrived past the cut: the teacher's next words
    token_chars: list[int]  # its tokens' lengths
    at: int  # the thinking's length at the cut: resumed only if nothing was added since


@dataclass
class Ongoing:
    """What one trajectory keeps between its turns, in memory only (a resume starts afresh)."""

    sessions: dict[int, PredictorSession | None] = field(default_factory=dict)  # per predictor
    held: Held | None = None
    student_kept: bool = True  # the student's last turn kept text

    async def release(self) -> None:
        """Close the held request, if any (the server stops decoding it)."""
        held, self.held = self.held, None
        if held is not None:
            await held.stream.aclose()


class Cooperation:
    """Writes trajectories with the given roles under one synthesis config."""

    def __init__(self, roles: dict[str, RoleRuntime], config: SynthesisConfig,
                 on_turn: TurnHook | None = None, pacing: Pacing | None = None) -> None:
        self.roles = roles
        self.config = config
        self.on_turn = on_turn
        self.pacing = pacing or FreePacing()
        self.retry = RetryPolicy(config.retries, config.backoff)  # of a failed request
        # Of a whole thinking that came back empty (its requests succeeded): another count.
        self.empty_retries = config.retries if config.empty_retries is None else config.empty_retries
        self.health = {r: ServerHealth(r, config.server_down_after) for r in roles}
        markers = {m for r in roles.values() for m in r.template.end_markers}
        self.end_markers = tuple(sorted(markers, key=len, reverse=True))
        strategy = config.strategy
        self.first: Role = "teacher" if strategy == "teacher-only" else "student"
        self.single = strategy != "cooperative"
        self.answer_role: Role = self.first if self.single else (
            "teacher" if config.answer_role == "teacher" else "student")

    async def run(self, problem: Problem, resume: Resume | None = None) -> Trajectory:
        """Write the whole trajectory of `problem` (continuing `resume`, if given).

        Raises GenerationError when this problem cannot be finished, ServerUnavailable when
        a server has been away for too long.
        """
        async with self.pacing.member():
            started = time.perf_counter()
            traj = resume.traj if resume else Trajectory(problem, self.config.strategy)
            start = resume or Resume(traj, 0, self.first)
            ongoing = Ongoing()
            try:
                for attempt in range(self.empty_retries + 1):
                    if not traj.finish_reason:
                        await self._think(traj, start.turns, start.role, ongoing)
                    ended = traj.finish_reason in (FinishReason.EOS, FinishReason.END_OF_THINKING)
                    if traj.thinking.strip() or not ended:
                        break
                    if attempt == self.empty_retries:  # no SFT sample in an empty thinking
                        raise GenerationError("empty thinking: the model ended at once on every retry")
                    traj.segments.clear()
                    traj.finish_reason = None
                    start = Resume(traj, 0, self.first)
            finally:
                await ongoing.release()
            await self._answer(traj)
            traj.seconds += time.perf_counter() - started
            return traj

    async def _think(self, traj: Trajectory, turns: int, role: Role, ongoing: Ongoing) -> None:
        used = sum(s.n_tokens for s in traj.segments)
        while True:
            if turns >= self.config.max_turns:
                traj.finish_reason = FinishReason.MAX_TURNS
                return
            budget = self.config.max_thinking_tokens - used
            turn = await self._turn(traj, role, budget, ongoing)
            turns += 1
            traj.append(role, turn.text, turn.n_tokens)
            used += turn.n_tokens
            if role == "student":
                ongoing.student_kept = bool(turn.text)
                if turn.text:  # the teacher's held words no longer follow on
                    await ongoing.release()
            if turn.reason:
                traj.finish_reason = turn.reason
            elif self._looping(traj, None):
                traj.finish_reason = FinishReason.REPETITION
            if turn.cut and not self.single:
                role = other(role)
            if self.on_turn:
                self.on_turn(traj, turns, role)
            if traj.finish_reason:
                return

    async def _turn(self, traj: Trajectory, role: Role, budget: int, ongoing: Ongoing
                    ) -> TurnResult:
        """Let `role` write until its predictor cuts, the thinking ends or the budget is spent."""
        rt = self.roles[role]
        predictor = None if self.single else rt.predictor
        thinking = traj.thinking  # joined once per turn, not once per request
        watcher = TurnWatcher(role, predictor, thinking, self.end_markers,
                              self._every(predictor), self._session(predictor, ongoing.sessions))
        stats = traj.stats[role]
        decision: Decision | None = None
        finish: str | None = None
        attempts = Attempts(self.retry, self.health[role])
        stream: AsyncGenerator[Delta, None] | None = None  # the open request, closed below
        try:
            if role == "teacher" and ongoing.held is not None:
                stream, decision = await self._resume(ongoing, len(thinking), watcher, stats)
            while decision is None:
                remaining = budget - len(watcher.token_ends)
                if remaining <= 0:
                    decision = await watcher.feed("", 0, final=True) or Decision(len(watcher.text), False)
                    return self._finish(traj, role, watcher, decision, FinishReason.BUDGET)
                if stream is None:
                    k = rt.step_tokens if self.config.mode == "step" else self.config.turn_tokens
                    prompt = rt.template.thinking_prompt(traj.problem.prompt, thinking + watcher.text)
                    # No stop strings: the marker must arrive in the text (a server that stops on
                    # it would report a plain "stop", indistinguishable from EOS); the watcher
                    # closes then.
                    request = self._request(traj, rt, prompt, min(k, remaining), ())
                    stats.requests += 1
                    stream = self.pacing.deltas(rt, request)
                try:
                    decision, finish = await self._read(stream, watcher, stats)
                    attempts.succeeded()
                except TransientBackendError as exc:
                    closing, stream = stream, None
                    await closing.aclose()
                    await self._back_off(stats, attempts, exc)
                    continue
                if decision is None:  # the request ended
                    ended, stream = stream, None
                    await ended.aclose()
                if decision is None and finish == "stop":  # EOS (or a stop string) with no marker
                    decision = Decision(len(watcher.text), True)
                    return self._finish(traj, role, watcher, decision, FinishReason.EOS)
                if decision is None and self._looping(traj, watcher):
                    decision = Decision(len(watcher.text), False)
                    return self._finish(traj, role, watcher, decision, FinishReason.REPETITION)
            reason = FinishReason.END_OF_THINKING if decision.ends_thinking else None
            if stream is not None and self._may_hold(role, decision, finish, ongoing):
                rest = watcher.past(decision.keep)
                if rest is not None:
                    ongoing.held = Held(stream, *rest, at=len(thinking) + decision.keep)
                    stream = None
            return self._finish(traj, role, watcher, decision, reason)
        finally:
            if stream is not None:
                await stream.aclose()

    async def _resume(self, ongoing: Ongoing, at: int, watcher: TurnWatcher, stats: RoleStats
                      ) -> tuple[AsyncGenerator[Delta, None] | None, Decision | None]:
        """The teacher's held request, with what arrived past its cut fed to `watcher`, if the
        thinking is where it was cut (the student kept nothing); else it is closed."""
        held, ongoing.held = ongoing.held, None
        assert held is not None
        if held.at != at:
            await held.stream.aclose()
            return None, None
        stats.resumed += 1
        stats.discarded_tokens -= len(held.token_chars)  # counted when it was cut: kept now
        decision = await watcher.feed(held.text, len(held.token_chars), False,
                                      token_chars=held.token_chars) if held.text else None
        return held.stream, decision

    def _may_hold(self, role: Role, decision: Decision, finish: str | None, ongoing: Ongoing
                  ) -> bool:
        """Whether the teacher's request stays open past this cut (see the module docstring)."""
        return (self.config.hold_teacher and role == "teacher" and not self.single
                and not ongoing.student_kept and self.config.mode == "stream"
                and isinstance(self.pacing, FreePacing) and finish is None
                and not decision.ends_thinking)

    @staticmethod
    def _session(predictor: BoundaryPredictor | None, sessions: dict[int, PredictorSession | None]
                 ) -> PredictorSession | None:
        """The trajectory's session of `predictor` (one per predictor model: roles that share a
        model share it), for predictors that keep state; else None."""
        if predictor is None:
            return None
        if id(predictor) not in sessions:
            sessions[id(predictor)] = predictor.open_session()
        return sessions[id(predictor)]

    def _every(self, predictor: BoundaryPredictor | None) -> int:
        """Tokens between predictor calls within a request."""
        every = self.config.predict_every or (predictor.default_every if predictor else 1)
        return self.pacing.predict_every(every)

    def _looping(self, traj: Trajectory, watcher: TurnWatcher | None) -> bool:
        window = self.config.repetition_window
        chars = window * 12  # enough characters for `window` words
        tail = traj.tail(chars) + (watcher.text[-chars:] if watcher else "")
        return is_looping(tail, window)

    async def _read(self, stream: AsyncGenerator[Delta, None], watcher: TurnWatcher,
                    stats: RoleStats) -> tuple[Decision | None, str | None]:
        """Feed a request's pieces to the watcher until it decides or the request ends."""
        decision, finish, started = None, None, time.perf_counter()
        try:
            async for delta in stream:
                stats.generated_tokens += delta.n_tokens
                finish = delta.finish_reason or finish  # a usage-only chunk may follow
                final = finish is not None and finish != "length"
                decision = await watcher.feed(delta.text, delta.n_tokens, final,
                                              finish == "length", delta.token_chars)
                if decision is not None:
                    break
        finally:
            stats.seconds += time.perf_counter() - started
        return decision, finish

    @staticmethod
    async def _back_off(stats: RoleStats, attempts: Attempts, exc: TransientBackendError) -> None:
        """Wait before retrying (`tessy.retries`); give the problem up when its retries are
        spent (ServerUnavailable stops the run when the role has been away too long)."""
        stats.retries += 1
        if not await attempts.back_off(exc):
            raise GenerationError(f"gave up after {attempts.tries} failed requests: {exc}") from exc

    def _finish(self, traj: Trajectory, role: Role, watcher: TurnWatcher, decision: Decision,
                reason: FinishReason | None) -> TurnResult:
        text = watcher.text[: decision.keep]
        if decision.ends_thinking:
            text = text.rstrip()
        kept = watcher.tokens_in(decision.keep)
        stats = traj.stats[role]
        stats.kept_tokens += kept
        stats.discarded_tokens += max(0, len(watcher.token_ends) - kept)
        return TurnResult(text, kept, not decision.ends_thinking and reason is None, reason)

    def _request(self, traj: Trajectory, rt: RoleRuntime, prompt: str, max_tokens: int,
                 stop: tuple[str, ...]) -> GenerationRequest:
        seed = rt.sampling.seed
        if seed is not None:  # distinct, reproducible per problem and request
            n = traj.stats["teacher"].requests + traj.stats["student"].requests
            seed = zlib.crc32(f"{seed}:{traj.problem.id}:{n}".encode())
        return GenerationRequest(prompt, max_tokens, rt.sampling, tuple(stop),
                                 traj.problem.id, seed)

    async def _answer(self, traj: Trajectory) -> None:
        """The answer role writes the final answer after the finished thinking (or it is read
        from the end of a thinking that was never closed: no tokens, the role that wrote it
        keeps the credit)."""
        closed = traj.finish_reason == FinishReason.END_OF_THINKING
        if self.config.answer_from == "thinking" and not closed and traj.thinking.strip():
            text, start = read_answer(traj.thinking)
            traj.answer_finish_reason = "read"
            traj.answer = Segment(traj.role_at(start), text, 0)
            return
        role = self.answer_role
        rt = self.roles[role]
        prompt = rt.template.answer_prompt(traj.problem.prompt, traj.thinking)
        # An answer that closes (or reopens) the thinking again has started over: stop there.
        stop = (*rt.template.answer_stop, "</think>", "<think>")
        request = self._request(traj, rt, prompt, self.config.max_answer_tokens, stop)
        stats, attempts = traj.stats[role], Attempts(self.retry, self.health[role])
        while True:
            watcher = TurnWatcher(role, None, "", ())
            stats.requests += 1
            try:
                async with aclosing(self.pacing.deltas(rt, request)) as stream:
                    _, finish = await self._read(stream, watcher, stats)
                attempts.succeeded()
                break
            except TransientBackendError as exc:
                await self._back_off(stats, attempts, exc)
        n = len(watcher.token_ends)
        stats.kept_tokens += n
        traj.answer_finish_reason = finish or ""
        traj.answer = Segment(role, watcher.text.strip(), n)
