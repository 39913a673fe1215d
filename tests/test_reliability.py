"""Runs that meet faulty servers, outages and stops, over real sockets (no mocks)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from fake_server import FakeOpenAIServer
from helpers import records, trajectories, wait_for
from tessy.backends.fake import SCRIPTS
from tessy.config import RunConfig, run_config_from_dict
from tessy.records import Problem
from tessy.synthesis.roles import open_roles
from tessy.synthesis.run_loop import StopRequest, synthesize

PROBLEMS = [Problem(f"p{i}", f"What is {i} + 1?") for i in range(8)]


def http_config(out, teacher, student, **synthesis) -> RunConfig:
    model = {"backend": "openai_http", "template": "qwen3", "timeout": 0.4}
    return run_config_from_dict({
        "output": str(out),
        "teacher": model | {"base_urls": [teacher.url]},
        "student": model | {"base_urls": [student.url]},
        "synthesis": {"concurrency": 4, "backoff": 0.01} | synthesis,
    })


async def run(config, problems=PROBLEMS, stop=None):
    async with open_roles(config) as roles:
        return await synthesize(config, problems, roles, progress=False, stop=stop)


def pair(**kwargs) -> tuple[FakeOpenAIServer, FakeOpenAIServer]:
    """A teacher and a student server (not started)."""
    return (FakeOpenAIServer(script=SCRIPTS["teacher"], **kwargs),
            FakeOpenAIServer(script=SCRIPTS["student"], **kwargs))


async def test_random_faults_of_every_kind_change_nothing(tmp_path):
    t, s = pair()
    with t, s:
        await run(http_config(tmp_path / "clean.jsonl", t, s))
    t, s = pair(fault_rate=0.35, hang_fault=1.0)
    s.reseed(2)
    with t, s:
        summary = await run(http_config(tmp_path / "faulty.jsonl", t, s, retries=20))
        met = set(t.faults) | set(s.faults)
    assert met == set(FakeOpenAIServer.FAULTS)  # refused-like, 5xx, 429, drops, hangs, garbage
    assert summary.failed == 0 and summary.written == len(PROBLEMS)
    # Retries continue from the text already received: the data is exactly the fault-free data.
    assert trajectories(records(tmp_path / "faulty.jsonl")) == trajectories(records(tmp_path / "clean.jsonl"))
    assert sum(sum(r["tessy"]["retries"].values()) for r in records(tmp_path / "faulty.jsonl")) > 0


async def test_prompt_too_long_is_an_error_row_and_never_retried(tmp_path):
    long = Problem("long", "Sum these: " + " ".join(str(i) for i in range(300)))
    t, s = pair(max_context=200)
    with t, s:
        summary = await run(http_config(tmp_path / "o.jsonl", t, s), [*PROBLEMS[:3], long])
        asked = [r for r in s.requests if "Sum these" in r["prompt"]]
    assert summary.written == 3 and summary.failed == 1
    error = records(tmp_path / "o.jsonl.errors.jsonl")[0]
    assert error["id"] == "long" and "maximum context length is 200" in error["error"]
    assert len(asked) == 1  # a 400 is final: no retry
    assert error["final"] is True  # nor retried by a rerun of the same config (unless asked)


async def test_retries_spent_on_server_errors_are_retried_by_the_next_run(tmp_path):
    t, s = pair()
    with t, s:
        s.fail_status = 500
        summary = await run(http_config(tmp_path / "o.jsonl", t, s, retries=1), PROBLEMS[:1])
    assert summary.failed == 1
    error = records(tmp_path / "o.jsonl.errors.jsonl")[0]
    assert "gave up after 2 failed requests" in error["error"] and error["final"] is False


def stop_after(server: FakeOpenAIServer, out, n_records: int) -> threading.Thread:
    """Shut `server` down once `out` holds `n_records` lines."""
    def watch():
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= n_records)
        server.__exit__()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


async def test_a_server_that_stays_down_stops_the_run_and_keeps_finished_work(tmp_path):
    out = tmp_path / "o.jsonl"
    t, s = pair(token_delay=0.005)
    t.__enter__(), s.__enter__()
    config = http_config(out, t, s, concurrency=2, server_down_after=1.0)
    stop_after(t, out, 2)
    started = time.monotonic()
    summary = await run(config)
    s.__exit__()
    assert time.monotonic() - started < 20  # bounded: the outage limit plus backoff
    assert "teacher server answered nothing for" in summary.stopped and t.url in summary.stopped
    assert summary.failed == 0 and summary.in_flight >= 1
    finished = [r["id"] for r in records(out)]
    assert len(finished) == summary.written >= 2
    # Servers back on the same ports: the rerun finishes the rest, each problem exactly once.
    t2, s2 = (FakeOpenAIServer(script=SCRIPTS[r], port=int(x.url.split(":")[2].split("/")[0]))
              for r, x in (("teacher", t), ("student", s)))
    with t2, s2:
        again = await run(config)
        prompts = [r["prompt"] for r in t2.requests + s2.requests]
    ids = [r["id"] for r in records(out)]
    assert sorted(ids) == sorted(p.id for p in PROBLEMS) and len(ids) == len(set(ids))
    assert again.already_done == len(finished) and again.resumed >= 1
    done_prompts = {p.prompt for p in PROBLEMS if p.id in finished}
    assert not any(q in prompt for prompt in prompts for q in done_prompts)  # not redone


async def test_a_server_restart_mid_run_costs_no_problem(tmp_path):
    out = tmp_path / "o.jsonl"
    t, s = pair(token_delay=0.005)
    t.__enter__(), s.__enter__()
    port = int(t.url.split(":")[2].split("/")[0])
    restarted = {}
    config = http_config(out, t, s, concurrency=2, server_down_after=30.0)
    async with open_roles(config) as roles:
        replica = roles["teacher"].backend.client.replicas.replicas[0]

        def restart():
            stop_after(t, out, 2).join()
            dropped = replica.failures + config.synthesis.concurrency  # in flight at the stop
            wait_for(lambda: replica.failures > dropped)  # then a connection refused, at least
            restarted["server"] = FakeOpenAIServer(script=SCRIPTS["teacher"], port=port).__enter__()

        thread = threading.Thread(target=restart, daemon=True)
        thread.start()
        summary = await synthesize(config, PROBLEMS, roles, progress=False)
    thread.join()
    restarted["server"].__exit__(), s.__exit__()
    assert summary.failed == 0 and summary.written == len(PROBLEMS) and not summary.stopped
    assert restarted["server"].requests  # the run went on against the restarted server


async def test_stop_checkpoints_in_flight_problems_and_a_rerun_continues_them(tmp_path):
    t, s = pair()
    with t, s:
        await run(http_config(tmp_path / "clean.jsonl", t, s))
    out = tmp_path / "o.jsonl"
    t, s = pair(token_delay=0.01)
    with t, s:
        config = http_config(out, t, s, concurrency=4, grace=0.0)
        stop = StopRequest()
        loop, asked, lock = asyncio.get_running_loop(), [], threading.Lock()

        def count(body):  # 6 requests of 4 problems: turns are done, no problem is finished
            with lock:
                asked.append(body)
                if len(asked) == 6:
                    loop.call_soon_threadsafe(stop, "SIGTERM")
        t.on_request = s.on_request = count
        first = await run(config, stop=stop)
        partial = tmp_path / "o.jsonl.partial.jsonl"
        saved = [json.loads(x) for x in partial.read_text().splitlines()]
        before = len(t.requests), len(s.requests)
        second = await run(config)
        later = t.requests[before[0]:] + s.requests[before[1]:]
    assert first.stopped == "SIGTERM" and first.in_flight >= 1 and saved
    assert second.resumed >= 1 and not partial.exists()  # removed once nothing is in flight
    # The rerun's first request for a checkpointed problem continues its saved thinking.
    for pid in {row["id"] for row in saved}:
        text = "".join(x for row in saved if row["id"] == pid for _, x, _ in row["add"])
        prompt = next(p for p in PROBLEMS if p.id == pid).prompt
        asked = [r["prompt"] for r in later if prompt in r["prompt"]]
        assert asked and all(text in q for q in asked)
    # ... and the data is exactly what an uninterrupted run writes.
    assert trajectories(records(out)) == trajectories(records(tmp_path / "clean.jsonl"))


async def test_a_held_teacher_request_reads_on_over_a_socket_with_the_same_data(tmp_path):
    """Held past a cut, the teacher's server decodes on while the student tries; reading on
    after the student kept nothing gives the data of asking again, with fewer requests."""
    teacher = "We add 17 and 25 first. Now the tens give 30. So the ones give 12. Then it is 42."
    student = ["x"] * 40
    student[11] = "Okay,"
    counts = {}
    for hold in (False, True):
        t = FakeOpenAIServer(script=teacher, token_delay=0.002)
        s = FakeOpenAIServer(script=" ".join(student))
        with t, s:
            summary = await run(http_config(tmp_path / f"{hold}.jsonl", t, s, hold_teacher=hold))
            counts[hold] = len(t.requests)
        assert summary.written == len(PROBLEMS) and summary.failed == 0
    assert trajectories(records(tmp_path / "True.jsonl")) == trajectories(records(tmp_path / "False.jsonl"))
    assert counts[True] < counts[False]
    teacher_requests = sum(r["tessy"]["requests"]["teacher"] for r in records(tmp_path / "True.jsonl"))
    assert teacher_requests == counts[True]  # the records count what reached the server
