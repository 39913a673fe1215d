"""Integration: cooperative synthesis over HTTP against real llama.cpp servers (the llama-server
that `tessy setup` builds), with the teacher server killed and restarted in the middle of the
run, and the managed servers of `--teacher model.gguf` (slow: real models)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_for
from tessy.cli import main
from tessy.embedded import qwen_coder_gguf, smollm2_gguf
from tessy.serving.llama_server import LlamaServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def refuses(port: int) -> bool:
    """Whether nothing listens on `port` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def our_servers() -> list[int]:
    """Pids of the llama-servers this process started and has not reaped."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if argv[0].endswith(b"llama-server") and ppid == os.getpid():
            pids.append(int(entry.name))
    return pids


def test_cooperative_run_over_llama_server_survives_a_teacher_restart(tmp_path):
    teacher = LlamaServer(qwen_coder_gguf(), slots=2, context=1024, log=tmp_path / "teacher.log")
    student = LlamaServer(smollm2_gguf(), slots=2, context=1024, log=tmp_path / "student.log")
    asyncio.run(teacher.start()), asyncio.run(student.start())
    out = tmp_path / "o.jsonl"
    cmd = [sys.executable, "-m", "tessy", "synthesize", "-q", "-o", str(out), "--limit", "4",
           "--teacher", teacher.url, "--student", student.url,
           "--teacher-template", "chat", "--student-template", "chat-think",
           "--max-thinking-tokens", "96", "--max-answer-tokens", "48", "--concurrency", "2",
           "--seed", "0", "--temperature", "0.7", "--server-down-after", "120"]
    try:
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: run.poll() is not None or (out.exists() and out.read_text() != ""),
                 timeout=600)  # the first record is written
        assert run.poll() is None, run.communicate()
        os.killpg(teacher.proc.pid, signal.SIGKILL)
        teacher.proc.wait()
        wait_for(lambda: refuses(teacher.port))
        # The outage lasts until the run meets it: the port drops the next connection (the kill
        # may fall while no teacher request is in flight), then the teacher restarts on it.
        with socket.create_server(("127.0.0.1", teacher.port)) as outage:
            outage.settimeout(600)
            outage.accept()[0].close()
        asyncio.run(teacher.start())  # the same port
        stdout, stderr = run.communicate(timeout=600)
    finally:
        asyncio.run(teacher.stop()), asyncio.run(student.stop())
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert run.returncode == 0, stderr
    assert "4 written, 0 failed" in stdout
    assert len({r["id"] for r in records}) == 4
    assert all(r["tessy"]["student_tokens"]["teacher"] > 0 for r in records)  # the server counts
    assert sum(r["tessy"]["retries"]["teacher"] for r in records) >= 1  # the outage was met...
    assert sum(r["tessy"]["requests"]["teacher"] for r in records) > 4  # ... and the run went on


def test_a_gguf_role_runs_on_a_managed_server_that_stops_with_the_run(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    code = main(["synthesize", "-q", "-o", str(out), "--limit", "2",
                 "--teacher", str(qwen_coder_gguf()), "--student", str(smollm2_gguf()),
                 "--teacher-template", "chat", "--student-template", "chat-think",
                 "--teacher-threads", "1", "--student-threads", "1",
                 "--max-thinking-tokens", "64", "--max-answer-tokens", "32", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["tessy"]["models"] for r in rows] == [  # what they are, never a path of this machine
        {"teacher": "Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
         "student": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)"}] * 2
    assert our_servers() == []


def test_a_model_the_server_cannot_load_is_one_line_naming_it(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    code = main(["synthesize", "-q", "-o", str(tmp_path / "o.jsonl"), "--teacher", str(bad),
                 "--student", str(smollm2_gguf())])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "llama-server for broken.gguf exited" in err and "log:" in err
    assert our_servers() == []  # the role started first is stopped again


def test_a_managed_server_dies_with_the_process_that_started_it(tmp_path):
    code = ("import asyncio, time\n"
            "from tessy.embedded import smollm2_gguf\n"
            "from tessy.serving.llama_server import LlamaServer\n"
            "s = LlamaServer(smollm2_gguf(), threads=1, context=512)\n"
            "asyncio.run(s.start())\n"
            "print(s.proc.pid, flush=True)\n"
            "time.sleep(600)\n")
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    server = int(starter.stdout.readline())
    starter.kill()  # SIGKILL: nothing of tessy's runs to stop the server
    starter.wait()

    def gone() -> bool:
        try:
            return Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True
    wait_for(gone, timeout=60)
