"""Bubblewrap cells: a sandbox made once and reused for many jobs, so a job costs a fork and a
Python start, not new namespaces and mounts (~15 ms on 2 cores, as much as the job itself).

A cell is one `bwrap` process tree: new network, pid, ipc and uts namespaces, only the
system dirs and Python's own trees mounted (read-only), its scratch dir writable, a private
`/tmp`, no `/proc`, no capabilities. Inside runs `_SERVER` as the namespace's init (pid 1).
For each job the host writes the program into a fresh dir under the scratch dir and sends
one JSON line; the server forks, sets the job's rlimits, execs a fresh interpreter on it, waits
up to the wall limit, then kills every other process in the namespace (`kill(-1)` from init
reaches all of them, however they forked), reaps them, empties `/tmp`, and answers with the
exit status. So a job starts with no process, no file and no state of an earlier one. The
cell's pids cgroup (set per job by the host) bounds a fork bomb.

No `--die-with-parent`: its signal comes when the *thread* that started the cell ends (a
grading pool's worker), not the process. A cell ends when its stdin closes instead: the server
reads EOF and exits, and with it, as init, every process of its namespace.

A job cannot signal the server: init ignores signals it has no handler for, even SIGKILL,
from inside its namespace. If a cell stops answering (wall limit plus a margin) the host
kills the whole cell and starts a new one for the next job.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from itertools import count
from pathlib import Path
from typing import IO

from tessy.grading.cgroups import Cgroup
from tessy.grading.executor import Job, Limits, Outcome, read_head

_SERVER = r"""
import json, os, resource, select, shutil, signal, sys
PY, ENV = sys.argv[1], json.loads(sys.argv[2])

def clear(path):
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass

def kill_all():
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return

for line in sys.stdin:
    job = json.loads(line)
    d = job["dir"]
    fds = [os.open(d + "/stdin", os.O_RDONLY),
           os.open(d + "/stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
           os.open(d + "/stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.chdir(d)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.closerange(3, 1 << 16)
            for name, soft, hard in job["rlimits"]:
                resource.setrlimit(getattr(resource, name), (soft, hard))
            os.execve(PY, [PY, "-I", "main.py"], dict(ENV, HOME=d))
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    ended = bool(poller.poll(job["wall"] * 1000))
    os.close(pidfd)
    code = None
    if ended:
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    kill_all()
    clear("/tmp")
    sys.stdout.write(json.dumps({"code": code, "timed_out": not ended}) + "\n")
    sys.stdout.flush()
"""

INSIDE = "/sandbox"  # where a cell sees its scratch dir (the host's path is not shown)
JOB_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONIOENCODING": "utf-8"}


def rlimits(limits: Limits) -> list[tuple[str, int, int]]:
    """The job's rlimits: SIGXCPU at the CPU limit (SIGKILL a second later if ignored), address
    space, file size (stdout and stderr are files: printing without end stops), no cores."""
    mb = 1 << 20
    return [("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 1),
            ("RLIMIT_AS", limits.memory_mb * mb, limits.memory_mb * mb),
            ("RLIMIT_FSIZE", limits.file_mb * mb, limits.file_mb * mb),
            ("RLIMIT_CORE", 0, 0)]


class Cell:
    """One reusable bwrap sandbox; `run` one job at a time (the caller pools cells)."""

    def __init__(self, bwrap: str, python: str, visible: list[tuple[str, str]], scratch: Path,
                 cgroup: Cgroup | None) -> None:
        self.scratch, self.cgroup = scratch, cgroup
        scratch.mkdir(mode=0o700)
        mounts: list[str] = []
        for kind, path in visible:  # ("link", "/bin") or ("bind", "/usr")
            mounts += (["--symlink", os.readlink(path), path] if kind == "link"
                       else ["--ro-bind", path, path])
        # The private /tmp first: Python's trees may live under /tmp (a venv in a CI clone),
        # and a mount made before it would be hidden by it.
        argv = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--as-pid-1", "--new-session", "--cap-drop", "ALL", "--tmpfs", "/tmp",
                *mounts, "--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/urandom",
                "/dev/urandom", "--bind", str(scratch), INSIDE,
                "--remount-ro", "/", "--chdir", INSIDE,
                python, "-I", "-S", "-c", _SERVER, python, json.dumps(JOB_ENV)]
        join = 'echo $$ > "$1"; shift; exec "$@"' if cgroup else 'shift; exec "$@"'
        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", join, "sh", str(cgroup.procs) if cgroup else "", *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={}, cwd=scratch, start_new_session=True, close_fds=True)
        self._ids = count()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def run(self, job: Job) -> Outcome:
        work = self.scratch / f"job-{next(self._ids)}"
        work.mkdir(mode=0o700)
        try:
            (work / "main.py").write_text(job.program, encoding="utf-8")
            (work / "stdin").write_text(job.stdin, encoding="utf-8")
            if self.cgroup:
                self.cgroup.limit(job.limits.processes + 1)  # + the cell's server
            start = time.monotonic()
            answer = self._ask({"dir": f"{INSIDE}/{work.name}", "wall": job.limits.wall_seconds,
                                "rlimits": rlimits(job.limits)}, job.limits.wall_seconds + 15)
            seconds = time.monotonic() - start
            if answer is None:
                self.close()
                return Outcome(None, timed_out=True, seconds=seconds,
                               error="the sandbox cell stopped answering; it was replaced")
            cap = job.limits.output_chars
            code = answer.get("code")
            return Outcome(code if isinstance(code, int) else None,
                           read_head(work / "stdout", cap), read_head(work / "stderr", cap),
                           answer.get("timed_out") is True, seconds)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _ask(self, request: dict[str, object], timeout: float) -> dict[str, object] | None:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write((json.dumps(request) + "\n").encode())
            stdin.flush()
        except OSError:
            return None
        return _read_line(stdout, timeout)

    def close(self) -> None:
        """Kill the cell's whole tree (its cgroup too) and remove its scratch dir."""
        try:
            os.killpg(self._proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup:
            self.cgroup.kill()
        self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            try:
                if pipe:
                    pipe.close()
            except OSError:  # a write still buffered for the dead cell
                pass
        if self.cgroup:
            self.cgroup.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _read_line(stream: IO[bytes], timeout: float) -> dict[str, object] | None:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        return None
    line = stream.readline()
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
