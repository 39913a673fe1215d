"""When a failed request is tried again, and when to give up: the one retry policy.

Only `TransientBackendError` is retried (`RequestRejected` never), with exponential backoff and
full jitter; after `retries` more tries the request gives up.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tessy.errors import BackendError, TransientBackendError

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


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """`call()`, tried again after transient failures as `policy` says."""
    for attempt in range(policy.retries + 1):
        try:
            return await call()
        except TransientBackendError as exc:
            if attempt == policy.retries:
                raise BackendError(f"gave up after {attempt + 1} tries: {exc}") from exc
            await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")
