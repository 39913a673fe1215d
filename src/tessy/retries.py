"""When a failed request is tried again, and when to give up: the one retry policy.

Only `TransientBackendError` is retried (`RequestRejected` never), with exponential backoff and
full jitter. What a failure costs depends on what it says (`Attempts.back_off`):

    failover (the role has another live replica)  -> tried again at once, not counted
    server_down (refused, 429/502/503/504)        -> waited out by every request of the role
                                                     together; ServerUnavailable once the role
                                                     has answered nothing for `give_up_after` s
    any other transient failure                   -> counted against the request: after
                                                     `retries` more tries it gives up

Which replica is in rotation is `tessy.replicas`' business; whether the role as a whole is away
is `ServerHealth`'s, here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tessy.errors import BackendError, ServerUnavailable, TransientBackendError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again."""

    retries: int = 3
    backoff: float = 1.0  # first delay in seconds; doubles with every attempt
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, backoff * 2**attempt)]."""
        return random.uniform(0, min(self.cap, self.backoff * 2**attempt))


class ServerHealth:
    """Is a role's server there at all? Shared by all requests of one role: failures that say
    it is away are waited out together; once it has answered nothing for `give_up_after`
    seconds the run stops, keeping what it finished, instead of failing every problem."""

    def __init__(self, role: str, give_up_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.role = role
        self.give_up_after = give_up_after
        self.clock = clock
        self.failing_since: float | None = None

    def ok(self) -> None:
        """A request of this role got through."""
        self.failing_since = None

    def failed(self, exc: TransientBackendError) -> None:
        """A request failed; raises ServerUnavailable when the server has been away too long."""
        if not exc.server_down:
            return
        now = self.clock()
        if self.failing_since is None:
            self.failing_since = now
        down = now - self.failing_since
        if self.give_up_after and down > self.give_up_after:
            raise ServerUnavailable(
                f"{self.role} server answered nothing for {down:.0f}s (last: {exc}); "
                "stopped, finished records are kept: rerun the same command to resume"
            )


class Attempts:
    """The failures of one request so far (a turn: its tries until one gets through), under a
    policy and, where given, its role's health (without: "away" failures count too)."""

    def __init__(self, policy: RetryPolicy, health: ServerHealth | None = None) -> None:
        self.policy = policy
        self.health = health
        self.blamed = 0  # failures counted against this request (its retries run out)
        self.waited = 0  # failovers and "server is away" failures, not counted against it

    def succeeded(self) -> None:
        """A try got through: the next request starts afresh, and the role is there."""
        self.blamed = self.waited = 0
        if self.health is not None:
            self.health.ok()

    async def back_off(self, exc: TransientBackendError) -> bool:
        """After a failed try: wait as the policy says and return True, or return False when
        the request's retries are spent. Raises ServerUnavailable when the role has been away
        too long (see the module docstring)."""
        if exc.failover:  # that replica is out of rotation; another one takes the request now
            self.waited += 1
            return True
        if self.health is not None:
            self.health.failed(exc)
            if exc.server_down:
                self.waited += 1
                await asyncio.sleep(self.policy.delay(self.blamed + self.waited - 1))
                return True
        if self.blamed >= self.policy.retries:
            return False
        self.blamed += 1
        await asyncio.sleep(self.policy.delay(self.blamed + self.waited - 1))
        return True

    @property
    def tries(self) -> int:
        """Tries counted against the request so far, the failing one included."""
        return self.blamed + 1


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """`call()`, tried again after transient failures as `policy` says."""
    attempts = Attempts(policy)
    while True:
        try:
            return await call()
        except TransientBackendError as exc:
            if not await attempts.back_off(exc):
                raise BackendError(f"gave up after {attempts.tries} tries: {exc}") from exc
