"""The retry policy: what a failure costs a request, and when an away server stops the run."""

from __future__ import annotations

import pytest

from tessy.errors import ServerUnavailable, TransientBackendError
from tessy.retries import Attempts, RetryPolicy, ServerHealth

POLICY = RetryPolicy(retries=2, backoff=0.0)


def failure(*, server_down: bool = False, failover: bool = False) -> TransientBackendError:
    exc = TransientBackendError("x: refused" if server_down else "x: dropped", server_down=server_down)
    exc.failover = failover
    return exc


async def test_only_failures_blamed_on_the_request_spend_its_retries():
    attempts = Attempts(POLICY, ServerHealth("teacher", 0.0))
    for _ in range(5):  # failovers and an away server: waited, never counted
        assert await attempts.back_off(failure(failover=True))
        assert await attempts.back_off(failure(server_down=True))
    assert await attempts.back_off(failure()) and await attempts.back_off(failure())
    assert not await attempts.back_off(failure()) and attempts.tries == 3
    attempts.succeeded()  # the next request starts afresh
    assert await attempts.back_off(failure()) and attempts.tries == 2


async def test_without_a_role_health_an_away_server_counts_too():
    attempts = Attempts(POLICY)
    assert await attempts.back_off(failure(server_down=True))
    assert await attempts.back_off(failure(server_down=True))
    assert not await attempts.back_off(failure(server_down=True))


async def test_a_role_away_for_too_long_stops_the_run_and_an_answer_resets_the_clock():
    now = [0.0]
    health = ServerHealth("teacher", 10.0, clock=lambda: now[0])
    attempts = Attempts(POLICY, health)
    assert await attempts.back_off(failure(server_down=True))
    now[0] = 8.0
    attempts.succeeded()  # the role answered: its outage is over
    now[0] = 16.0
    assert await attempts.back_off(failure(server_down=True))
    now[0] = 27.0
    with pytest.raises(ServerUnavailable, match="teacher server answered nothing for 11s"):
        await attempts.back_off(failure(server_down=True))
