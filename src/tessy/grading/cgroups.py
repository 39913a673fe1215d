"""Pids cgroups for sandboxed jobs: a process-count limit that binds root (RLIMIT_NPROC does
not) and a handle on every process a job made, however it forked. Used where the cgroup tree
is writable (root; v1 `pids` hierarchy, or v2 with the pids controller enabled)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

CGROUP_PIDS = Path("/sys/fs/cgroup/pids")  # cgroup v1; v2 has one tree at /sys/fs/cgroup
CGROUP_V2 = Path("/sys/fs/cgroup")
PREFIX = "tessy-sandbox-"
_trees = count()


@dataclass
class Cgroup:
    """One job's (or one cell's) cgroup."""

    path: Path

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def limit(self, processes: int) -> None:
        (self.path / "pids.max").write_text(str(processes))

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
            time.sleep(0.001)  # let the killed be reaped before looking again

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (it empties once its dead are reaped)."""
        self.kill()
        for _ in range(1000):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.002)


@dataclass
class CgroupTree:
    """This process's folder in the pids hierarchy; a child cgroup per job or cell."""

    path: Path

    @classmethod
    def create(cls) -> CgroupTree | None:
        """A new folder, or None where no pids hierarchy can be written."""
        for base in (CGROUP_PIDS, CGROUP_V2):
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            if base == CGROUP_V2 and "pids" not in _read(base / "cgroup.subtree_control"):
                continue
            _sweep(base)
            path = base / f"{PREFIX}{os.getpid()}-{next(_trees)}"
            try:
                path.mkdir()
            except OSError:
                continue
            return cls(path)
        return None

    def child(self, name: str, processes: int) -> Cgroup | None:
        path = self.path / name
        try:
            path.mkdir()
            cgroup = Cgroup(path)
            cgroup.limit(processes)
        except OSError:
            return None
        return cgroup

    def remove(self) -> None:
        for child in self.path.iterdir():
            if child.is_dir():
                Cgroup(child).remove()
        try:
            self.path.rmdir()
        except OSError:
            pass


def _sweep(base: Path) -> None:
    """Remove the folders of tessy processes that died without cleaning up (killed -9)."""
    for stale in base.glob(f"{PREFIX}*"):
        pid = stale.name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            CgroupTree(stale).remove()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
