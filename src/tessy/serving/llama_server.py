"""A llama-server subprocess that tessy starts, waits for and stops: one GGUF, `slots` parallel
sequences (continuous batching, a prompt cache per slot), on a free loopback port.

The server runs in its own session, so stopping it (SIGTERM, then SIGKILL after a grace period)
reaches nothing else, and gets SIGTERM from the kernel when the process that started it dies
(even by SIGKILL), so a killed run leaves no model loaded. Its output goes to a log file, whose
last lines a failed start quotes; a log tessy made up is removed when the server stops cleanly.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import httpx

from tessy.errors import ModelLoadError
from tessy.serving.build import find_server

READY_TIMEOUT = 600.0  # loading a model from a cold disk
PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGTERM when `parent` dies (Linux; a no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took hold
        os._exit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_threads() -> int:
    """Every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def shared_threads(models: dict[str, str | Path], cores: int | None = None) -> dict[str, int]:
    """CPU threads of llama-servers that share this machine's cores, by name: the largest
    model's server (the first, on a tie) takes every core, each other one a share in proportion
    to its model's size, at least one. Two servers that each take every core starve each other
    (llama.cpp's threads meet at a barrier at every layer, so one descheduled thread stalls its
    whole server): 16 problems on 2 cores took 140-421 s with both servers on 2 threads, 83-84 s
    with the 135M student's on one (BENCHMARKS.md)."""
    cores = cores or default_threads()
    sizes = {name: max(Path(path).stat().st_size, 1) for name, path in models.items()}
    total, largest = sum(sizes.values()), max(sizes, key=sizes.get)
    return {name: cores if name == largest else max(1, round(cores * size / total))
            for name, size in sizes.items()}


class LlamaServer:
    """`llama-server -m MODEL` on 127.0.0.1, as a managed child process."""

    def __init__(self, model: str | Path, *, slots: int = 1, context: int = 4096,
                 threads: int | None = None, alias: str | None = None,
                 log: Path | None = None) -> None:
        self.model = Path(model)
        self.slots, self.context = slots, context  # context: tokens per slot
        self.threads = threads or default_threads()
        self.alias = alias or self.model.stem
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        self.own_log = log is None  # made up here: removed when the server stops cleanly
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [str(find_server()), "-m", str(self.model), "--alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "-t", str(self.threads),
                "--parallel", str(self.slots), "-c", str(self.slots * self.context),
                "--cont-batching", "--no-webui",
                # Idle threads sleep instead of spinning: the teacher's and the student's
                # servers share the cores, and spinning ones starve the busy one (BENCHMARKS.md).
                "--poll", "0"]

    async def start(self) -> str:
        """Start the server and wait until it serves; its /v1 URL."""
        if not self.model.is_file():
            raise ModelLoadError(f"GGUF file not found: {self.model}")
        command = self.command()
        if self.log is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log = Path(name)
        parent = os.getpid()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=lambda: die_with_parent(parent))
        try:
            await self._ready()
        except BaseException:
            await self.stop(keep_log=True)  # the error quotes it
            raise
        return self.url

    async def _ready(self) -> None:
        """Poll /health until it answers 200; fail as soon as the process exits."""
        assert self.proc is not None
        health = self.url.removesuffix("/v1") + "/health"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:  # loopback
            while True:
                if self.proc.poll() is not None:
                    raise ModelLoadError(f"llama-server for {self.model.name} exited with "
                                         f"{self.proc.returncode}: {self.last_lines()}")
                try:
                    if (await client.get(health)).status_code == 200:
                        await self._check_identity(client)
                        return
                except httpx.HTTPError:
                    pass
                if loop.time() > deadline:
                    raise ModelLoadError(f"llama-server for {self.model.name} did not become ready "
                                         f"in {READY_TIMEOUT:.0f}s: {self.last_lines()}")
                await asyncio.sleep(0.1)  # polling a child's readiness; no event to wait on

    async def _check_identity(self, client: httpx.AsyncClient) -> None:
        """The server that answered is this one: another process may have taken the port
        between `free_port` and the bind, and answered while this one failed to bind."""
        try:
            models = (await client.get(self.url + "/models")).json().get("data", [])
        except (ValueError, AttributeError):
            models = []
        if self.proc is None or self.proc.poll() is not None or \
                self.alias not in [m.get("id") for m in models]:
            raise ModelLoadError(f"llama-server for {self.model.name}: port {self.port} is "
                                 f"served by another process: {self.last_lines()}")

    def last_lines(self, n: int = 3) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines() if self.log else []
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:]) + f" (log: {self.log})"

    async def stop(self, grace: float = 10.0, keep_log: bool = False) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; reap the process. A server that had
        already exited keeps its log (it says why)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
        if self.own_log and not keep_log and self.log is not None:
            self.log.unlink(missing_ok=True)
