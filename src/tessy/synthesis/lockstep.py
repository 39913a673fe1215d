"""The authors' prototype's scheduling, kept as a baseline to measure tessy against.

A pool of problems advances in rounds: every trajectory in the pool sends one k-token request,
the round waits until all of them have come back whole, then every trajectory runs its predictor
over the new chunk (the calls of a round batch into one forward) and sends its next request. A
finished problem leaves the pool and the next one joins. The data is the same as `step` mode's;
only the waiting differs, which is the point: BENCHMARKS.md measures what the barrier costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

from tessy.backends.base import Delta, GenerationRequest
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.roles import RoleRuntime

ONLY_AT_CHUNK_ENDS = 1 << 30  # predict_every that labels only when a request has ended


class Rounds:
    """A barrier whose parties come and go: a round ends when every member has arrived."""

    def __init__(self) -> None:
        self.members = 0
        self.arrived = 0
        self.count = 0  # rounds completed
        self._release = asyncio.Event()

    @asynccontextmanager
    async def member(self):
        """Take part in the rounds for the duration of the block."""
        self.members += 1
        try:
            yield
        finally:
            self.members -= 1
            self._maybe_release()

    async def wait(self) -> None:
        """Arrive, and wait until every member of this round has arrived."""
        release = self._release
        self.arrived += 1
        self._maybe_release()
        try:
            await release.wait()
        except asyncio.CancelledError:
            if not release.is_set():
                self.arrived -= 1
            raise

    def _maybe_release(self) -> None:
        if self.arrived and self.arrived >= self.members:
            self.count += 1
            self.arrived = 0
            self._release.set()
            self._release = asyncio.Event()


class LockstepCooperation(Cooperation):
    """Cooperation in step mode behind a round barrier, labelling once per chunk."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rounds = Rounds()

    async def run(self, problem, resume=None):
        """One trajectory, as a member of the pool's rounds."""
        async with self.rounds.member():
            return await super().run(problem, resume)

    def _every(self, predictor) -> int:
        return ONLY_AT_CHUNK_ENDS

    async def _deltas(self, rt: RoleRuntime, request: GenerationRequest) -> AsyncIterator[Delta]:
        async with rt.limiter, aclosing(rt.backend.generate(request)) as stream:
            deltas = [delta async for delta in stream]  # whole chunks, like the prototype
        await self.rounds.wait()
        for delta in deltas:
            yield delta
