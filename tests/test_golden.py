"""Golden files: the records of the fake and scripted models, byte for byte.

Any change to what tessy writes (the engine's cuts, the record layout, the config hash) shows
here as a diff. Only wall-clock timings are masked, and over HTTP the tokens received past a cut
(generated and discarded counts): tokens that arrive in the same socket read as the cut are
received too, and how many do depends on how the network grouped them. After an intended change to the format,
regenerate with `TESSY_UPDATE_GOLDEN=1 pytest tests/test_golden.py` and say why in the commit.
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest
from benchmarks.serving import role_servers, sim_server_cmd

from tessy.cli import main

GOLDEN = Path(__file__).parent / "golden"
FAKE_RUNS = {
    "fake-stream": [],
    "fake-step": ["--mode", "step", "--step-tokens", "3/5"],
    "fake-teacher-only": ["--strategy", "teacher-only"],
    "fake-student-only": ["--strategy", "student-only", "--messages"],
}
SCRIPTED_RUNS = {
    "scripted-stream": [],
    "scripted-lockstep": ["--mode", "step", "--step-tokens", "5/10", "--scheduler", "lockstep"],
}


def golden_problems(tmp_path: Path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Problem {i}: add {i} and 2.",
                                        "answer": str(i + 2)}) + "\n" for i in range(3)))
    return path


def masked(path: Path, network: bool = False) -> str:
    """The records, sorted by id, with wall-clock timings (and network-grouped counts) zeroed."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        meta = record["tessy"]
        for key in ("seconds", *(("generated_tokens", "discarded_tokens") if network else ())):
            meta[key] = dict.fromkeys(meta[key], 0)
    records.sort(key=lambda r: r["id"])
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def check(name: str, out: Path, network: bool = False) -> None:
    golden = GOLDEN / f"{name}.jsonl"
    text = masked(out, network)
    if os.environ.get("TESSY_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{name}: records differ from {golden}"


@pytest.mark.parametrize("name", FAKE_RUNS)
def test_fake_models_write_the_golden_records(tmp_path, monkeypatch, name):
    monkeypatch.setattr(sys, "argv", ["tessy"])
    out = tmp_path / f"{name}.jsonl"
    code = main(["synthesize", str(golden_problems(tmp_path)), "-o", str(out), "-q", "--dry-run",
                 "--temperature", "0", *FAKE_RUNS[name]])
    assert code == 0
    check(name, out)


def test_scripted_models_over_http_write_the_golden_records(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tessy"])
    fast = ("--decode", "0.0005", "--per-seq", "0", "--prefill", "0", "--overhead", "0")
    problems = golden_problems(tmp_path)
    with role_servers(partial(sim_server_cmd, mean_words=120, cost=fast), tmp_path) as urls:
        for name, extra in SCRIPTED_RUNS.items():
            out = tmp_path / f"{name}.jsonl"
            code = main(["synthesize", str(problems), "--teacher", urls["teacher"], "--student",
                         urls["student"], "--teacher-template", "qwen3", "--student-template",
                         "qwen3", "--temperature", "0", "-o", str(out), "-q", *extra])
            assert code == 0
            check(name, out, network=True)
