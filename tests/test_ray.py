"""`--ray` on a real local multi-node Ray cluster, in a loopback-only network namespace."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessy.cli import main

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
@pytest.mark.parametrize("victim", ["worker", "node"])
def test_a_killed_ray_worker_or_node_is_rerun_and_resumes_its_shard(tmp_path, victim):
    script = (f"ip link set lo up && cd {ROOT} && "
              f"{sys.executable} -m tests.ray_cluster_run {tmp_path} {victim}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                          timeout=380, env=env)
    assert done.returncode == 0 and "RAY OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "o.jsonl.shards").exists()  # merged and cleaned up


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
