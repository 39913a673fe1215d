"""The lock-step baseline: same data as step mode, but every round waits for all requests."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from conftest import fake_roles
from tessy.cli.synthesize import build_config
from tessy.config import SynthesisConfig
from tessy.errors import ConfigError
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.pacing import FreePacing, LockstepPacing, Rounds

PROBLEMS = [Problem(f"p{i}", f"What is 17 + 25? (variant {i})") for i in range(4)]


class Logged:
    """A backend that logs when each request starts and ends."""

    def __init__(self, inner, log: list) -> None:
        self.inner, self.log = inner, log

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def generate(self, request):
        self.log.append("start")
        try:
            async for delta in self.inner.generate(request):
                yield delta
        finally:
            self.log.append("end")


async def run(pacing, log: list, delays=(0.001, 0.003)):
    roles = fake_roles()
    for rt, delay in zip(roles.values(), delays, strict=True):
        rt.backend.delay = delay  # the roles decode at different speeds
        rt.backend = Logged(rt.backend, log)
        rt.step_tokens = 5 if rt.role == "student" else 10
    config = SynthesisConfig(mode="step")
    engine = Cooperation(roles, config, pacing=pacing)
    trajs = await asyncio.gather(*(engine.run(p) for p in PROBLEMS))
    return engine, trajs


def rounds_are_kept(log: list[str]) -> bool:
    """No request starts once one has ended, until every request in flight has ended."""
    in_flight, ending = 0, False
    for event in log:
        if event == "start":
            if ending:
                return False
            in_flight += 1
        else:
            in_flight -= 1
            ending = in_flight > 0
    return True


async def test_lockstep_writes_the_same_data_as_step_mode_in_rounds():
    async_log, lock_log = [], []
    _, free = await run(FreePacing(), async_log)
    engine, locked = await run(LockstepPacing(), lock_log)
    for a, b in zip(free, locked, strict=True):
        assert [dataclasses.astuple(s) for s in a.segments] == \
               [dataclasses.astuple(s) for s in b.segments]
        assert a.answer == b.answer
    assert rounds_are_kept(lock_log)
    assert not rounds_are_kept(async_log)  # the check can fail: the async scheduler overlaps
    requests = sum(t.stats[r].requests for t in locked for r in t.stats)
    assert engine.pacing.rounds.count >= requests / len(PROBLEMS)
    assert engine.pacing.rounds.members == 0


async def test_rounds_release_when_every_member_arrived_or_left():
    rounds = Rounds()
    order = []

    async def member(name: str, arrivals: int):
        async with rounds.member():
            for i in range(arrivals):
                await asyncio.sleep(0.001 * (name == "slow"))
                await rounds.wait()
                order.append((name, i))

    await asyncio.gather(member("fast", 3), member("slow", 1))
    assert order[:2] in ([("fast", 0), ("slow", 0)], [("slow", 0), ("fast", 0)])
    assert order[2:] == [("fast", 1), ("fast", 2)]  # alone once the slow one left
    assert rounds.count == 3


def test_lockstep_needs_step_mode_and_step_tokens_parse():
    opts = {"teacher": ("fake",), "student": ("fake",), "dry_run": True, "config": None}
    config, _ = build_config((), opts | {"mode": "step", "scheduler": "lockstep",
                                         "step_tokens": "5/10"})
    assert config.synthesis.scheduler == "lockstep"
    assert (config.student.step_tokens, config.teacher.step_tokens) == (5, 10)
    with pytest.raises(ConfigError, match="synthesis.scheduler: lockstep needs mode step"):
        build_config((), opts | {"scheduler": "lockstep"})
    with pytest.raises(ConfigError, match="--step-tokens: '5x' is not K or STUDENT/TEACHER"):
        build_config((), opts | {"step_tokens": "5x"})
