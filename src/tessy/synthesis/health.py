"""Is a role's server there at all? Tells a flaky request from a server that is gone.

Failures that say "the server is away" (refused, 503...) are waited out by every problem
together; once the server has answered nothing for `give_up_after` seconds the run stops,
keeping what it finished, instead of turning every problem into an error row.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tessy.errors import ServerUnavailable, TransientBackendError


class ServerHealth:
    """Shared by all requests of one role."""

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
