"""The sandbox against hostile code: every sample fails with a reason and harms nothing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tessy.grading import Gradable, Limits, LocalSandbox, Reason, grade_all
from tessy.grading import sandbox as sandbox_module
from tessy.grading.sandbox import Job, run_jobs

# A HumanEval-shaped problem whose check a right answer passes.
TEST = "def check(f):\n    assert f(2) == 4\n"
RIGHT = "def double(x):\n    return 2 * x\n"


def hostile(tmp_path: Path, port: int) -> dict[str, str]:
    """Each does harm first, then gives the right function: it passes only if the harm worked
    (or was not noticed)."""
    outside = tmp_path / "outside.txt"
    return {
        "infinite loop": "while True:\n    pass\n",
        "fork bomb": "import os\nwhile True:\n    os.fork()\n",
        "20 GB": "x = bytearray(20 * 10**9)\n",
        "write outside": f"open({str(outside)!r}, 'w').write('pwned')\n",
        "read secrets": "import os\nassert os.environ['HF_TOKEN'] and os.environ['OPENAI_API_KEY']\n",
        "socket": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n",
        "kill parent": "import os, time\nos.kill(os.getppid(), 9)\nos.kill(1, 9)\ntime.sleep(60)\n",
        "print 100 MB": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)\n",
    }


def isolations() -> list[str]:
    found = []
    if sandbox_module.bwrap_path():
        found.append("bwrap")
    if sandbox_module.unshare_works():
        found.append("unshare")
    return found


def processes_naming(path: Path) -> list[str]:
    """Command lines of live processes that name `path` (a sandbox's cells and job wrappers)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in cmd:
                out.append(cmd)
    return out


@pytest.mark.parametrize("isolation", isolations() or [pytest.param("bwrap", marks=pytest.mark.skip(
    reason="neither bwrap nor unshare works here"))])
def test_hostile_samples_fail_and_harm_nothing(isolation, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    samples = hostile(tmp_path, listener.getsockname()[1])
    limits = Limits(cpu_seconds=2, wall_seconds=4, memory_mb=1024, processes=32)
    with LocalSandbox(isolation) as box:
        root, tree = box._root, box._cgroups
        assert box.isolation == isolation
        items = [Gradable(f"```python\n{code}{RIGHT}```",
                          {"test": TEST, "entry_point": "double"}) for code in samples.values()]
        grades = grade_all(items, box, limits=limits)
        # the right function alone passes in the same sandbox: the failures are the harm's
        assert grade_all([Gradable(f"```python\n{RIGHT}```",
                                   {"test": TEST, "entry_point": "double"})], box,
                         limits=limits)[0].passed
    for (name, _), grade in zip(samples.items(), grades, strict=True):
        assert grade is not None and not grade.passed, name
        assert grade.reason in (Reason.TIMEOUT, Reason.RUNTIME_ERROR), (name, grade)
        assert grade.detail, name
    assert not (tmp_path / "outside.txt").exists()
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    listener.close()
    assert processes_naming(root) == [] and not root.exists()
    # every job ran in this sandbox's pids cgroups, which can only be removed once empty
    assert tree is None or not tree.path.exists()
    assert os.environ["HF_TOKEN"] == "hf_secret"  # ours, untouched


def test_limits_name_the_reason():
    with LocalSandbox() as box:
        quick = Limits(cpu_seconds=1, wall_seconds=10)
        outs = run_jobs(box, [
            Job("import sys\nprint(sys.stdin.read().upper())", "hi"),
            Job("while True: pass", limits=quick),
            Job("raise ValueError('bad input')"),
            Job("x = bytearray(8 * 10**9)", limits=Limits(memory_mb=512)),
        ])
    assert outs[0].ok and outs[0].stdout == "HI\n"
    assert outs[1].why() in ("CPU time limit", "wall timeout")
    assert outs[2].why() == "ValueError: bad input"
    assert outs[3].why() == "memory limit"


def test_environment_is_empty_and_home_hidden(monkeypatch):
    monkeypatch.setenv("TESSY_TEST_SECRET", "x")
    with LocalSandbox() as box:
        out = box.run(Job("import os, pathlib\nprint(sorted(os.environ))\n"
                          "print(pathlib.Path.home() == pathlib.Path.cwd())"))
    assert out.ok, out.why()
    names, home = out.stdout.splitlines()
    assert "TESSY_TEST_SECRET" not in names and home == "True"


def test_unknown_isolation_is_one_line():
    from tessy.errors import ConfigError

    with pytest.raises(ConfigError, match="sandbox isolation"):
        LocalSandbox("docker")


def test_a_python_under_tmp_runs_in_the_sandbox(tmp_path):
    """A venv under /tmp (as in a CI clone) is still visible inside the cell's private /tmp."""
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with LocalSandbox(python=str(venv / "bin" / "python")) as box:
        out = box.run(Job("import sys\nprint(sys.prefix)"))
    assert out.ok, out.why()
    assert out.stdout.strip() == str(venv)
