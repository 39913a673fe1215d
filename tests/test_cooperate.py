"""One trajectory on scripted fake models."""

from __future__ import annotations

import dataclasses
import random

from conftest import fake_roles
from tessy.backends.fake import FakeBackend
from tessy.config import SynthesisConfig
from tessy.errors import TransientBackendError
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation, Ongoing
from tessy.synthesis.guards import is_looping

PROBLEM = Problem("p1", "What is 17 + 25?")


async def run(roles=None, step_tokens=20, **kwargs):
    roles = roles or fake_roles()
    for rt in roles.values():
        rt.step_tokens = step_tokens
    return await Cooperation(roles, SynthesisConfig(**kwargs)).run(PROBLEM)


async def test_student_starts_and_both_roles_write():
    traj = await run()
    assert traj.segments[0].role == "student"
    assert traj.segments[0].text == "Okay, let's see."
    assert {s.role for s in traj.segments} == {"student", "teacher"}
    assert all(a.role != b.role for a, b in zip(traj.segments, traj.segments[1:], strict=False))
    assert traj.finish_reason == "end_of_thinking"
    assert traj.answer.role == "student" and traj.answer.text == "The answer is 42."
    assert traj.assistant_text().startswith("<think>\nOkay, let's see.")
    assert "</think>\n\nThe answer is 42." in traj.assistant_text()


async def test_stream_requests_track_turns():
    turns: list[int] = []
    cooperation = Cooperation(fake_roles(), SynthesisConfig(hold_teacher=False),
                              on_turn=lambda t, n, r: turns.append(n))
    traj = await cooperation.run(PROBLEM)
    requests = sum(traj.stats[r].requests for r in traj.stats)
    assert requests == turns[-1] + 1  # one per turn, plus the answer
    assert turns[-1] >= traj.switches + 1  # a last turn that only ends the thinking adds none


async def test_a_held_teacher_reads_on_after_an_empty_student_turn_with_the_same_text():
    """The fake student keeps nothing on some turns; the teacher's request held past its cut
    then goes on instead of a new one, and the trajectory is word for word the same."""
    turns: list[int] = []
    held = Cooperation(fake_roles(), SynthesisConfig(), on_turn=lambda t, n, r: turns.append(n))
    traj = await held.run(PROBLEM)
    fresh = await run(hold_teacher=False)
    assert [dataclasses.astuple(s) for s in traj.segments] == \
           [dataclasses.astuple(s) for s in fresh.segments]
    assert traj.answer == fresh.answer
    resumed = traj.stats["teacher"].resumed
    assert resumed >= 1 and fresh.stats["teacher"].resumed == 0
    assert traj.stats["teacher"].requests == fresh.stats["teacher"].requests - resumed
    requests = sum(traj.stats[r].requests for r in traj.stats)
    assert requests + resumed == turns[-1] + 1  # a turn reads a new request or a held one
    # What the held request decoded past the cut was kept, not thrown away.
    assert traj.stats["teacher"].discarded_tokens < fresh.stats["teacher"].discarded_tokens


async def test_stream_and_step_give_the_same_trajectory():
    stream = await run(mode="stream")
    for k in (1, 5, 20):
        step = await run(mode="step", step_tokens=k)
        assert [dataclasses.astuple(s) for s in step.segments] == \
               [dataclasses.astuple(s) for s in stream.segments]
        assert step.stats["teacher"].requests > stream.stats["teacher"].requests


async def test_answer_role_is_configurable():
    traj = await run(answer_role="teacher")
    assert traj.answer.role == "teacher"


async def test_budget_stops_thinking():
    traj = await run(max_thinking_tokens=10)
    assert traj.finish_reason == "budget"
    assert sum(traj.tokens_by_role().values()) <= 10
    assert traj.answer is not None


async def test_max_turns():
    traj = await run(max_turns=2)
    assert traj.finish_reason == "max_turns" and len(traj.segments) == 2


async def test_baselines_use_one_role():
    for strategy, role in (("teacher-only", "teacher"), ("student-only", "student")):
        traj = await run(strategy=strategy)
        assert {s.role for s in traj.segments} == {role}
        assert traj.answer.role == role and traj.switches == 0


async def test_repetition_is_detected():
    roles = fake_roles()
    for rt in roles.values():
        rt.backend.words = ("again and again " * 40).split()
    traj = await run(roles, strategy="teacher-only", mode="step")
    assert traj.finish_reason == "repetition"
    assert is_looping("x " + "a b c " * 20, 400)
    assert not is_looping("one two three four five six seven eight nine ten", 400)


def looping_by_definition(text: str, window: int, repeats: int = 4, least: int = 24) -> bool:
    """The last max(repeats x period, least) of the window's words repeat with that period."""
    words = text[-window * 12:].split()[-window:] if window > 0 else []
    n = len(words)
    for period in range(1, n // repeats + 1):
        span = max(period * repeats, least)
        if span > n:
            break
        tail = words[n - span:]
        if all(tail[i] == tail[i + period] for i in range(span - period)):
            return True
    return False


def test_the_loop_detector_is_its_definition():
    rng = random.Random(3)
    vocab = "a b c the so x = 4 y and".split()
    found = 0
    for _ in range(3000):
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 150))]
        words += [rng.choice([*vocab, "q", "r"]) for _ in range(rng.randint(1, 30))] * rng.randint(0, 7)
        words += [rng.choice(vocab) for _ in range(rng.randint(0, 2))]
        text = "".join(w + rng.choice([" ", "\n", "  "]) for w in words)
        for window in (0, 10, 40, 400):
            expected = looping_by_definition(text, window)
            assert is_looping(text, window) == expected, (window, text)
            found += expected
    assert found > 500  # both outcomes are exercised


class FlakyBackend(FakeBackend):
    """Fails its first `n` requests with a transient error mid-stream."""

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.failures = n

    async def generate(self, request):
        inner = super().generate(request)
        async for i, delta in _enumerate(inner):
            if self.failures and i == 2:
                self.failures -= 1
                raise TransientBackendError("injected drop")
            yield delta


async def _enumerate(agen):
    i = 0
    async for x in agen:
        yield i, x
        i += 1


async def test_transient_failures_are_retried_and_continue_the_text():
    clean = await run()
    roles = fake_roles()
    flaky = FlakyBackend(2, name="flaky", script=roles["teacher"].backend.words and
                         " ".join(roles["teacher"].backend.words))
    roles["teacher"].backend = flaky
    traj = await run(roles, backoff=0.0)
    assert traj.thinking == clean.thinking
    assert traj.stats["teacher"].retries == 2


async def test_retries_exhausted_raise_generation_error():
    import pytest

    from tessy.errors import GenerationError

    roles = fake_roles()
    roles["student"].backend = FlakyBackend(100, script=" ".join(roles["student"].backend.words))
    with pytest.raises(GenerationError, match="injected drop"):
        await run(roles, backoff=0.0, retries=2)


async def test_empty_thinking_closed_by_the_marker_is_retried_then_fails():
    import pytest

    from tessy.errors import GenerationError

    roles = fake_roles()
    roles["teacher"].backend = FakeBackend(name="fake-teacher", script="</think> The answer is 42.")
    with pytest.raises(GenerationError, match="empty thinking"):
        await run(roles, strategy="teacher-only", retries=2)
    assert len(roles["teacher"].backend.requests) == 3


async def test_empty_thinking_has_its_own_count_of_tries():
    import pytest

    from tessy.errors import GenerationError

    roles = fake_roles()
    roles["teacher"].backend = FakeBackend(name="fake-teacher", script="</think> The answer is 42.")
    with pytest.raises(GenerationError, match="empty thinking"):
        await run(roles, strategy="teacher-only", retries=2, empty_retries=0)
    assert len(roles["teacher"].backend.requests) == 1


class Tracked(FakeBackend):
    """A scripted model that counts its requests still open."""

    open = 0

    async def generate(self, request):
        self.open += 1
        try:
            async for delta in super().generate(request):
                yield delta
        finally:
            self.open -= 1


async def test_a_held_request_is_closed_when_the_student_keeps_text(monkeypatch):
    # The teacher is cut before "Now", "So" and "Then"; the student keeps nothing at its first
    # two turns (the teacher's request is held past the second cut and read on), then keeps
    # "Okay," (the request held past "So" is closed: the teacher asks again after it).
    teacher = "We add 17 and 25 first. Now the tens give 30. So the ones give 12. Then the total is 42."
    student = ["x"] * 40
    student[11] = "Okay,"
    released = []
    release = Ongoing.release

    async def spy(self):
        released.append(self.held is not None)
        await release(self)

    monkeypatch.setattr(Ongoing, "release", spy)
    runs = {}
    for hold in (True, False):
        roles = fake_roles()
        roles["teacher"].backend = Tracked(name="fake-teacher", script=teacher)
        roles["student"].backend = Tracked(name="fake-student", script=" ".join(student))
        traj = await Cooperation(roles, SynthesisConfig(hold_teacher=hold)).run(PROBLEM)
        assert roles["teacher"].backend.open == roles["student"].backend.open == 0  # none left open
        runs[hold] = traj
    held, fresh = runs[True], runs[False]
    assert [dataclasses.astuple(s) for s in held.segments] == \
           [dataclasses.astuple(s) for s in fresh.segments]
    assert [(s.role, s.text) for s in held.segments] == [
        ("teacher", "We add 17 and 25 first. Now the tens give 30."), ("student", " Okay,"),
        ("teacher", " the ones give 12. Then the total is 42.")]
    assert held.stats["teacher"].resumed >= 1
    assert held.stats["teacher"].requests == fresh.stats["teacher"].requests - held.stats["teacher"].resumed
    assert True in released  # a held request was closed by the student's kept text
