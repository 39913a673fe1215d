"""Which replica of a role serves a request, and which replicas are away.

Routing keeps a problem on one replica while it can, because its next request continues its
previous prompt and finds it in that replica's prefix cache:

* `affinity`: rendezvous hashing of the problem id over the live replicas. When a replica goes
  away, only its own problems move (each to its next choice); the others stay where their
  prefixes are warm. When it comes back, its problems return to it.
* `least-loaded`: the replica with the fewest requests in flight; a problem stays on its last
  replica unless that one carries clearly more than the least loaded (so a prefix that is still
  warm is used), and moves when it is away.

A replica that refuses connections, answers 429/502/503/504 or sends nothing for a whole
request timeout is taken out of rotation; its problems continue at once on live replicas from
their last turn. A background probe asks its `/v1/models` every few seconds and puts it back
when it answers. Only when every replica of a role is away does the run wait (the role's
`tessy.retries.ServerHealth`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tessy.errors import TransientBackendError

ROUTES = ("affinity", "least-loaded")
PROBE_EVERY = 2.0  # seconds between probes of a replica that is away
STICKY_SLACK = 4  # least-loaded: stay on the last replica while within this many requests of the least


@dataclass
class Replica:
    """One server of a role and what it has done in this run."""

    url: str
    up: bool = True
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    outages: int = 0  # times it was taken out of rotation
    _key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self._key = self.url.encode()


def rendezvous_score(affinity: bytes, replica: Replica) -> int:
    """The highest-scoring live replica serves `affinity` (a stable 64-bit hash of both)."""
    return int.from_bytes(hashlib.blake2b(affinity + b"\0" + replica._key, digest_size=8).digest(), "big")


class ReplicaSet:
    """The replicas of one role; `route()` picks one for a request and learns from its fate."""

    def __init__(self, urls: list[str], route: str = "affinity",
                 alive: Callable[[str], Awaitable[bool]] | None = None,
                 probe_every: float | None = None, remember: int = 4096) -> None:
        if route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}, not {route!r}")
        self.replicas = [Replica(u) for u in urls]
        self.route_name = route
        self.alive = alive
        self.probe_every = PROBE_EVERY if probe_every is None else probe_every
        self._last: OrderedDict[str, Replica] = OrderedDict()  # least-loaded stickiness, bounded
        self._remember = remember
        self._probes: set[asyncio.Task[None]] = set()

    def live(self) -> list[Replica]:
        """Replicas in rotation."""
        return [r for r in self.replicas if r.up]

    def pick(self, affinity: str) -> Replica:
        """The replica for the next request of `affinity` (with every replica away: the one it
        would have anyway, so its request fails fast and the role's wait rule applies)."""
        if len(self.replicas) == 1:
            return self.replicas[0]
        live = self.live() or self.replicas
        if self.route_name == "affinity":
            key = affinity.encode()
            return max(live, key=lambda r: rendezvous_score(key, r))
        least = min(live, key=lambda r: r.in_flight)
        last = self._last.get(affinity)
        if last is not None and last.up and last.in_flight <= least.in_flight + STICKY_SLACK:
            choice = last
        else:
            choice = least
        self._last[affinity] = choice
        self._last.move_to_end(affinity)
        if len(self._last) > self._remember:
            self._last.popitem(last=False)
        return choice

    @contextmanager
    def route(self, affinity: str) -> Iterator[Replica]:
        """Pick a replica for one request and account for it; a failure that says the replica
        is away takes it out of rotation and marks the error `failover` if others are live."""
        replica = self.pick(affinity)
        replica.in_flight += 1
        replica.requests += 1
        try:
            yield replica
        except TransientBackendError as exc:
            replica.failures += 1
            if (exc.server_down or exc.timed_out) and len(self.replicas) > 1:
                self.take_out(replica)
                exc.failover = bool(self.live())
            raise
        finally:
            replica.in_flight -= 1

    def take_out(self, replica: Replica) -> None:
        """Stop routing to `replica` until its probe answers."""
        if not replica.up:
            return
        replica.up = False
        replica.outages += 1
        if self.alive is not None:
            task = asyncio.get_running_loop().create_task(self._probe(replica))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _probe(self, replica: Replica) -> None:
        assert self.alive is not None
        while not replica.up:
            await asyncio.sleep(self.probe_every)
            if await self.alive(replica.url):
                replica.up = True

    def stats(self) -> dict[str, dict[str, int]]:
        """Per replica: requests, failures, outages (for the run summary)."""
        return {r.url: {"requests": r.requests, "failures": r.failures, "outages": r.outages}
                for r in self.replicas}

    def close(self) -> None:
        """Stop the probes."""
        for task in self._probes:
            task.cancel()
