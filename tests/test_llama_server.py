"""Integration: cooperative synthesis over HTTP against real llama.cpp servers (llama-cpp-python),
with the teacher server killed and restarted in the middle of the run (slow: real models)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from helpers import wait_for
from tessy.embedded import gemma_gguf, smollm2_gguf

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` serving one GGUF on a fixed port."""

    def __init__(self, model, port: int) -> None:
        self.model, self.port = str(model), port
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, log) -> LlamaServer:
        # interrupt_requests=False: by default this server cuts a running stream whenever
        # another request arrives, which no concurrent client can work with.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", self.model, "--host",
             "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "1",
             "--interrupt_requests", "False"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"llama.cpp server on {self.port} did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def refuses(port: int) -> bool:
    """Whether nothing listens on `port` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_cooperative_run_over_llama_cpp_survives_a_teacher_restart(tmp_path):
    teacher = LlamaServer(gemma_gguf(), free_port())
    student = LlamaServer(smollm2_gguf(), free_port())
    log = open(tmp_path / "servers.log", "wb")
    teacher.start(log), student.start(log)
    out = tmp_path / "o.jsonl"
    cmd = [sys.executable, "-m", "tessy", "synthesize", "-q", "-o", str(out),
           "--teacher", teacher.url, "--student", student.url,
           "--teacher-template", "plain-think", "--student-template", "chat-think",
           "--student-tokenizer", str(smollm2_gguf()), "--max-thinking-tokens", "96",
           "--max-answer-tokens", "24", "--concurrency", "2", "--seed", "0",
           "--temperature", "0.7", "--server-down-after", "120"]
    try:
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not out.exists() or not out.read_text():  # the first record is written
            assert run.poll() is None, run.communicate()
            time.sleep(0.1)
        teacher.kill()
        wait_for(lambda: refuses(teacher.port))  # refused until the restart has loaded its model
        restarted = teacher.start(log)
        stdout, stderr = run.communicate(timeout=600)
    finally:
        for server in (teacher, student):
            server.proc.kill()
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert run.returncode == 0, stderr
    assert "6 written, 0 failed" in stdout
    assert len({r["id"] for r in records}) == 6
    assert any({s["role"] for s in r["tessy"]["segments"]} == {"student", "teacher"}
               for r in records)
    assert all(r["tessy"]["student_tokens"] is not None for r in records)  # counted by the server
    assert sum(r["tessy"]["retries"]["teacher"] for r in records) >= 1  # the outage was met...
    assert restarted.proc.poll() is None  # ... and the run went on against the new server
    served = (tmp_path / "servers.log").read_text(errors="replace")
    assert served.count("POST /v1/completions") > 12
