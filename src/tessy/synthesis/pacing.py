"""How the requests of many trajectories are paced: freely (tessy) or in lock-step rounds.

`FreePacing` lets every problem go at its own pace, reading each request's pieces as they
arrive. `LockstepPacing` reproduces the authors' prototype, kept as a baseline to measure tessy
against: a pool of problems advances in rounds; every trajectory in the pool sends one k-token
request, the round waits until all of them have come back whole, then every trajectory runs its
predictor over the new chunk (the calls of a round batch into one forward) and sends its next
request. The data is the same as `step` mode's; only the waiting differs, which is the point:
BENCHMARKS.md measures what the barrier costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Protocol

from tessy.backends.base import Delta, GenerationRequest
from tessy.synthesis.roles import RoleRuntime

ONLY_AT_CHUNK_ENDS = 1 << 30  # predict_every that labels only when a request has ended


class Pacing(Protocol):
    """What the engine asks of a pacing."""

    def member(self) -> AbstractAsyncContextManager[None]:
        """Held while one trajectory is written."""
        ...

    def predict_every(self, every: int) -> int:
        """Tokens between predictor calls within a request, given the configured `every`."""
        ...

    def deltas(self, rt: RoleRuntime, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """The pieces of one request, under the role's request limit."""
        ...


class FreePacing:
    """No barrier: pieces are handed on as they arrive."""

    @asynccontextmanager
    async def member(self) -> AsyncIterator[None]:
        """Nothing to join."""
        yield

    def predict_every(self, every: int) -> int:
        """As configured."""
        return every

    async def deltas(self, rt: RoleRuntime, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """The backend's stream, closed (aborting the request) when the caller closes this."""
        async with rt.limiter, aclosing(rt.backend.generate(request)) as stream:
            async for delta in stream:
                yield delta


class Rounds:
    """A barrier whose parties come and go: a round ends when every member has arrived."""

    def __init__(self) -> None:
        self.members = 0
        self.arrived = 0
        self.count = 0  # rounds completed
        self._release = asyncio.Event()

    @asynccontextmanager
    async def member(self) -> AsyncIterator[None]:
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


class LockstepPacing:
    """The prototype's rounds: whole chunks, one round barrier, labelling once per chunk."""

    def __init__(self) -> None:
        self.rounds = Rounds()

    def member(self) -> AbstractAsyncContextManager[None]:
        """Take part in the rounds while one trajectory is written."""
        return self.rounds.member()

    def predict_every(self, every: int) -> int:
        """Only at chunk ends, like the prototype."""
        return ONLY_AT_CHUNK_ENDS

    async def deltas(self, rt: RoleRuntime, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """The whole chunk, handed on once every member of the round has its own."""
        async with rt.limiter, aclosing(rt.backend.generate(request)) as stream:
            deltas = [delta async for delta in stream]
        await self.rounds.wait()
        for delta in deltas:
            yield delta


def make_pacing(scheduler: str) -> Pacing:
    """The pacing of `synthesis.scheduler`."""
    return FreePacing() if scheduler == "async" else LockstepPacing()
