"""`--ray`: on a real local multi-node Ray cluster in a loopback-only network namespace, hit by
a fault on every shard; the driver's handling of lost tasks on a fake `ray`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tessy.cli import main
from tessy.config import RoleConfig, RunConfig
from tessy.io.shards import locked
from tessy.synthesis.ray_shards import RETRIES

ROOT = Path(__file__).resolve().parent.parent


def can_isolate() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs tessy[ray]")
@pytest.mark.skipif(not can_isolate(), reason="needs `unshare -n` (a network namespace)")
def test_a_killed_ray_worker_and_removed_nodes_cost_only_a_retry_of_their_shards(tmp_path):
    script = (f"ip link set lo up && cd {ROOT} && "
              f"{sys.executable} -m tests.ray_cluster_run {tmp_path}")
    # This checkout's tessy (ROOT/src) in every process, whichever one the venv has installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"),
                                                      str(ROOT)]))
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                          timeout=380, env=env)
    assert done.returncode == 0 and "RAY OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "o.jsonl.shards").exists()  # merged and cleaned up


class RayError(Exception):
    pass


class LocalRayletDiedError(RayError):
    pass


class FakeRay:
    """Just enough of `ray` for `run_on_ray`: each shard's attempts end at once, as scripted."""

    exceptions = SimpleNamespace(RayError=RayError, LocalRayletDiedError=LocalRayletDiedError)

    def __init__(self, outcomes: dict[int, list]) -> None:
        self.outcomes = outcomes  # per shard index: each attempt's exit code or exception
        self.submitted: list[tuple] = []
        self.joins = 0

    def init(self, **options) -> None:
        self.joins += 1

    def shutdown(self) -> None:
        pass

    def remote(self, **options):
        return lambda fn: SimpleNamespace(remote=self.submit)

    def submit(self, *args) -> tuple:
        self.submitted.append(args)
        return args[1], len(self.submitted), self.outcomes[args[1]].pop(0)

    def wait(self, refs, num_returns, timeout):
        return refs, []

    def get(self, ref):
        if isinstance(ref[2], Exception):
            raise ref[2]
        return ref[2]


def run_on_fake_ray(tmp_path, monkeypatch, outcomes):
    from tessy.synthesis.ray_shards import run_on_ray

    ray = FakeRay(outcomes)
    monkeypatch.setitem(sys.modules, "ray", ray)
    said = []
    config = RunConfig(output=str(tmp_path / "o.jsonl"), workers=3,
                       teacher=RoleConfig(api_key="sk-teacher-1111"))
    summary = run_on_ray(config, "auto", todo=3, progress=False,
                         say=lambda text, level: said.append(text))
    return ray, summary, said


def test_when_the_drivers_node_dies_it_joins_again_and_reruns_only_the_lost_shards(
        tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-0000")
    lost = LocalRayletDiedError("The task's local raylet died.")
    ray, summary, said = run_on_fake_ray(tmp_path, monkeypatch, {1: [lost, 0], 2: [0], 3: [lost, 0]})
    assert summary.shards == [0, 0, 0] and ray.joins == 2
    assert [args[1] for args in ray.submitted] == [1, 2, 3, 1, 3]  # shard 2 had ended
    assert said == ["--ray: this driver's Ray node died; joined the cluster again and submitted "
                    "the unfinished shards anew (1/3, 3/3)"]
    assert all(args[4]["TESSY_TEACHER_API_KEY"] == "sk-teacher-1111"
               and "AWS_SECRET_ACCESS_KEY" not in args[4] for args in ray.submitted)


def test_a_shard_lost_for_good_fails_alone_and_rejoins_are_bounded(tmp_path, monkeypatch):
    lost = LocalRayletDiedError("The task's local raylet died.")
    outcomes = {1: [RayError("worker crashed\nretries used up")], 2: [0],
                3: [lost] * (RETRIES + 1)}
    ray, summary, said = run_on_fake_ray(tmp_path, monkeypatch, outcomes)
    assert summary.shards == [-1, 0, -1] and summary.merged == 0  # reported, not merged
    assert said[0] == "--ray: shard 1/3 lost: RayError: worker crashed"
    assert [args[1] for args in ray.submitted] == [1, 2, 3] + [3] * RETRIES


def test_ray_bad_input_is_one_line_naming_the_option(tmp_path, monkeypatch, capsys):
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"id": "a", "prompt": "x"}\n')
    run = ["synthesize", str(problems), "-o", str(tmp_path / "o.jsonl"), "--dry-run", "-q"]
    monkeypatch.setattr(sys, "argv", ["tessy"])
    assert main([*run, "--ray", "127.0.0.1:1"]) == 1
    assert "--ray 127.0.0.1:1: cannot reach the Ray cluster" in capsys.readouterr().err
    assert main([*run, "--ray", "nohost"]) == 1
    assert "--ray nohost: expected HOST:PORT" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as without the extra
    assert main([*run, "--ray"]) == 1
    assert "--ray: Ray is not installed: pip install 'tessy[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()  # nothing started


def test_a_shard_run_again_starts_once_its_previous_process_lets_go(tmp_path, monkeypatch):
    from tessy.synthesis import ray_shards

    out = tmp_path / "o.jsonl.shards" / "1-of-3.jsonl"
    previous = locked(out)  # the process of the attempt whose worker or node died
    previous.__enter__()
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:  # it exits
            previous.__exit__(None, None, None)

    monkeypatch.setattr(ray_shards.time, "sleep", sleep)
    ray_shards._await_lock(out)
    assert len(polls) == 3
