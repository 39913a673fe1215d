"""The CLI as a real process, killed and signalled: nothing finished is lost, redone or doubled."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

from fake_server import FakeOpenAIServer
from helpers import problems_file, records, trajectories
from tessy.backends.fake import SCRIPTS

N_PROBLEMS = 12


def command(problems, out, t, s, *extra):
    return [sys.executable, "-m", "tessy", "synthesize", str(problems), "-o", str(out), "-q",
            "--teacher", t.url, "--student", s.url, "--teacher-template", "qwen3",
            "--student-template", "qwen3", "--concurrency", "4", *extra]


def launch(problems, out, t, s, *extra) -> subprocess.Popen:
    """The CLI as a background process with text pipes."""
    return subprocess.Popen(command(problems, out, t, s, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def rerun(problems, out, t, s) -> subprocess.CompletedProcess:
    """The same command again, to the end."""
    return subprocess.run(command(problems, out, t, s), capture_output=True, text=True,
                          timeout=120)


@contextmanager
def role_servers(token_delay):
    """Teacher and student fake servers, decoding `token_delay` seconds per token."""
    with FakeOpenAIServer(script=SCRIPTS["teacher"], token_delay=token_delay) as t, \
            FakeOpenAIServer(script=SCRIPTS["student"], token_delay=token_delay) as s:
        yield t, s


def test_sigkill_at_random_points_loses_nothing_and_redoes_nothing(tmp_path):
    problems = problems_file(tmp_path, N_PROBLEMS)
    with role_servers(0.01) as (t, s):
        subprocess.run(command(problems, tmp_path / "clean.jsonl", t, s), check=True, timeout=120)
        clean = trajectories(records(tmp_path / "clean.jsonl"))
        out, rng, kills = tmp_path / "o.jsonl", random.Random(7), 0
        prompts = {f"q{i}": f"What is {i} + 1?<" for i in range(N_PROBLEMS)}
        while True:
            done = {r["id"] for r in records(out)}
            seen = len(t.requests), len(s.requests)
            proc = subprocess.Popen(command(problems, out, t, s), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            while len(t.requests) + len(s.requests) == sum(seen) and proc.poll() is None:
                time.sleep(0.01)  # started up and working: now kill it at a random point
            try:
                proc.wait(timeout=rng.uniform(0.05, 0.6) if kills < 6 else 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                kills += 1
            asked = [r["prompt"] for r in t.requests[seen[0]:] + s.requests[seen[1]:]]
            assert not any(prompts[i] in q for q in asked for i in done)  # finished: not redone
            written = records(out)
            assert len(written) == len({r["id"] for r in written})  # never duplicated
            if proc.returncode == 0:
                break
    assert kills >= 3
    assert trajectories(written) == clean  # every problem once, as if never killed


def test_sigterm_finishes_in_flight_work_and_exits_with_a_summary(tmp_path):
    problems = problems_file(tmp_path, N_PROBLEMS)
    out = tmp_path / "o.jsonl"
    with role_servers(0.01) as (t, s):
        proc = launch(problems, out, t, s, "--grace", "20")
        while not records(out):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
        n = len(records(out))
        assert proc.returncode == 143, stderr
        assert "stopped by SIGTERM: 0 in flight" in stderr and f"{n} written" in stdout
        assert 1 <= n < N_PROBLEMS  # stopped taking new problems; in-flight ones finished
        again = rerun(problems, out, t, s)
    assert again.returncode == 0 and f"{N_PROBLEMS - n} written" in again.stdout
    assert len({r["id"] for r in records(out)}) == N_PROBLEMS


def test_a_second_sigint_stops_at_once_and_keeps_checkpoints(tmp_path):
    problems = problems_file(tmp_path, N_PROBLEMS)
    out = tmp_path / "o.jsonl"
    with role_servers(0.02) as (t, s):
        proc = launch(problems, out, t, s, "--grace", "60")
        partial = tmp_path / "o.jsonl.partial.jsonl"
        while not partial.exists() or not partial.read_text():
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert "signal again to stop at once" in proc.stderr.readline()  # the first was handled
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - started < 10  # not the 60 s grace
        assert proc.returncode == 130 and "stopped by SIGINT" in stderr
        again = rerun(problems, out, t, s)
    assert again.returncode == 0 and "continued from checkpoints" in again.stdout
    assert len({r["id"] for r in records(out)}) == N_PROBLEMS
