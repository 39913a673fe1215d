"""One run over several processes: `--shard K/N`, `tessy merge` and `--workers N`, with kills."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_server import FakeOpenAIServer
from helpers import ids, problems_file, wait_for
from tessy.backends.fake import SCRIPTS
from tessy.cli import main
from tessy.config import RoleConfig, RunConfig
from tessy.errors import ConfigError
from tessy.io.jsonl import AppendLog
from tessy.io.shards import Shard, locked, merge, shard_outputs
from tessy.secrets import ROLES, auth_env, key_env
from tessy.synthesis.workers import SETTINGS, shard_env

IDS = [f"q{i}" for i in range(30)]


def test_shards_partition_the_ids_and_bad_specs_are_refused():
    for n in (1, 2, 5):
        owners = [[k for k in range(1, n + 1) if Shard(k, n).owns(i)] for i in IDS]
        assert all(len(o) == 1 for o in owners)
    assert Shard.parse(" 2/3 ") == Shard(2, 3)
    for bad in ("3/2", "0/2", "1/0", "two/3", "1-2"):
        with pytest.raises(ConfigError, match="shard: "):
            Shard.parse(bad)


def test_changing_n_between_runs_then_merging_keeps_every_id_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tessy"])
    problems, out = problems_file(tmp_path), tmp_path / "o.jsonl"
    run = ["synthesize", str(problems), "-o", str(out), "-q", "--dry-run"]
    assert main([*run, "--shard", "1/3"]) == 0
    assert main([*run, "--shard", "2/2"]) == 0  # another N: skips what shard 1/3 finished
    assert main([*run, "--shard", "3/2"]) == 1
    assert "shard: '3/2': K must be between 1 and N" in capsys.readouterr().err
    assert main([*run, "--workers", "0"]) == 1
    assert "workers: must be >= 1" in capsys.readouterr().err
    assert len(shard_outputs(out)) == 2 and not out.exists()
    # A merge killed half-way: some records already appended to the output.
    first = (out.parent / "o.jsonl.shards" / "1-of-3.jsonl").read_text().splitlines()[:2]
    with AppendLog(out) as log:
        for line in first:
            log.append(json.loads(line))
    assert merge(out) > 0
    assert not (tmp_path / "o.jsonl.errors.jsonl").exists()  # no failures: no error file
    assert merge(out) == 0  # nothing left, nothing doubled
    assert main(run) == 0  # the run without a shard finishes the rest
    got = ids(out)
    assert sorted(got) == sorted(IDS) and len(got) == len(set(got))


def test_one_shard_has_one_writer_and_a_running_shard_is_not_merged(tmp_path):
    path = Shard(1, 2).output(tmp_path / "o.jsonl")
    path.parent.mkdir()
    path.write_text(json.dumps({"id": "q1"}) + "\n")
    with locked(path):
        with pytest.raises(ConfigError, match="another tessy process is writing it"):
            with locked(path):
                pass
        with pytest.raises(ConfigError, match="another tessy process is writing it"):
            merge(tmp_path / "o.jsonl")
    assert merge(tmp_path / "o.jsonl") == 1


def command(problems, out, t, s, *extra):
    return [sys.executable, "-m", "tessy", "synthesize", str(problems), "-o", str(out), "-q",
            "--teacher", t.url, "--student", s.url, "--teacher-template", "qwen3",
            "--student-template", "qwen3", "--concurrency", "3", "--workers", "2", *extra]


def children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    return [int(x) for x in open(path).read().split()] if os.path.exists(path) else []


def shard_records(out) -> int:
    return sum(len(ids(p)) for p in shard_outputs(out))


@pytest.mark.parametrize("victim", ["worker", "parent"])
def test_kill_9_of_a_worker_or_the_parent_then_the_same_command(tmp_path, victim):
    problems, out = problems_file(tmp_path, 16), tmp_path / "o.jsonl"
    with FakeOpenAIServer(script=SCRIPTS["teacher"], token_delay=0.004) as t, \
            FakeOpenAIServer(script=SCRIPTS["student"], token_delay=0.004) as s:
        parent = subprocess.Popen(command(problems, out, t, s), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(children(parent.pid)) == 2)
        workers = children(parent.pid)
        wait_for(lambda: shard_records(out) >= 3)  # both at work, some records durable
        os.kill(workers[0] if victim == "worker" else parent.pid, signal.SIGKILL)
        parent.wait(timeout=60)
        if victim == "worker":
            assert parent.returncode == 1 and "exited with -9" in parent.stderr.read()
        for pid in workers:  # with the parent gone, its workers die too (PR_SET_PDEATHSIG)
            wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}")
                     or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z")
        finished = set(ids(out)) | {i for p in shard_outputs(out) for i in ids(p)}
        finished_prompts = {f"What is {int(i[1:])} + 1?" for i in finished}
        t.requests.clear(), s.requests.clear()
        again = subprocess.run(command(problems, out, t, s), capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
        asked = [r["prompt"] for r in t.requests + s.requests]
    got = ids(out)
    assert sorted(got) == sorted(f"q{i}" for i in range(16)) and len(got) == len(set(got))
    assert not shard_outputs(out)  # merged
    assert not any(q in prompt for prompt in asked for q in finished_prompts)  # not redone


def test_a_worker_gets_tessys_settings_and_the_roles_credentials_by_name_only(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-0000")  # another service's
    monkeypatch.setenv("TESSY_EVENT_LOOP", "asyncio")
    config = RunConfig(teacher=RoleConfig(api_key="sk-teacher-1111"),
                       student=RoleConfig(role="student", basic_auth="ann:pw"))
    assert shard_env(config) == {"TESSY_EVENT_LOOP": "asyncio",
                                 "TESSY_TEACHER_API_KEY": "sk-teacher-1111",
                                 "TESSY_STUDENT_BASIC_AUTH": "ann:pw"}


def test_every_tessy_variable_the_source_reads_reaches_a_remote_worker():
    src = Path(__file__).resolve().parent.parent / "src"
    names = {m for p in src.rglob("*.py") for m in re.findall(r"\bTESSY_[A-Z_]+\b", p.read_text())}
    credentials = {f(role) for role in ROLES for f in (key_env, auth_env)}
    assert names and names - credentials <= set(SETTINGS)


def test_a_rerun_shard_with_nothing_to_do_adds_no_earlier_figures(tmp_path):
    from tessy.io.run_record import record_attempt
    from tessy.synthesis.workers import _summary

    record = tmp_path / "1-of-2.jsonl.run.json"
    record_attempt(tmp_path / "1-of-2.jsonl", {"written": 5, "failed": 2})
    now = time.time()
    assert _summary(record, now - 60).written == 5  # finished in this run: counted
    assert _summary(record, now + 60).written == 0  # an earlier run's: not this run's
    assert _summary(record, now + 60).failed == 0
