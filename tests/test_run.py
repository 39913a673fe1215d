"""`tessy.run_synthesis`: a run from a library call, as `tessy synthesize` makes it."""

from __future__ import annotations

import json

import tessy
from tessy import RoleConfig, RunConfig, RunSummary, SamplingConfig
from test_golden import check, golden_problems


def fake_config(tmp_path, **fields) -> RunConfig:
    greedy = SamplingConfig(temperature=0.0)
    return RunConfig(inputs=[str(golden_problems(tmp_path))], output=str(tmp_path / "o.jsonl"),
                     teacher=RoleConfig(backend="fake", template="qwen3", sampling=greedy),
                     student=RoleConfig(role="student", backend="fake", template="qwen3",
                                        sampling=greedy), **fields)


def test_a_library_run_writes_what_the_cli_writes_then_has_nothing_to_do(tmp_path):
    config = fake_config(tmp_path)
    said = []
    summary = tessy.run_synthesis(config, say=lambda text, level: said.append(text))
    assert isinstance(summary, RunSummary) and summary.written == 3 and not summary.stopped
    check("fake-stream", tmp_path / "o.jsonl")  # the records of `synthesize --dry-run`
    assert summary.line().startswith("3 written, 0 failed, 0 already done, 0 bad rows -> ")
    attempt = json.loads((tmp_path / "o.jsonl.run.json").read_text())
    assert attempt["written"] == 3 and "todo" not in attempt  # the run record keeps its keys
    again = tessy.run_synthesis(config)
    assert (again.todo, again.written, again.already_done) == (0, 0, 3)
    assert again.line() == f"nothing to do: 3 already done -> {config.output}" and not said


def test_a_shard_then_the_whole_run_merges_it(tmp_path):
    said = []
    shard = tessy.run_synthesis(fake_config(tmp_path, shard="2/3"),
                                say=lambda text, level: said.append((level, text)))
    assert shard.output == str(tmp_path / "o.jsonl.shards" / "2-of-3.jsonl")
    assert shard.written == len(open(shard.output).readlines()) == 2  # p0, p1
    rest = tessy.run_synthesis(fake_config(tmp_path), say=lambda text, level: said.append((level, text)))
    assert rest.written + shard.written == 3 and rest.already_done == shard.written
    assert said == [("info", f"merged {shard.written} records from {tmp_path}/o.jsonl.shards "
                              f"into {tmp_path}/o.jsonl")]
    check("fake-stream", tmp_path / "o.jsonl")


def test_shard_summaries_add_up():
    parts = [RunSummary(written=2, failed=1, seconds=3.0, errors=["a: x"], stopped="",
                        tokens={"teacher": 5, "student": 1}),
             RunSummary(written=1, seconds=4.5, stopped="SIGTERM", errors=["b: y"],
                        tokens={"teacher": 1, "student": 3})]
    total = RunSummary.combined(parts)
    assert (total.written, total.failed, total.seconds, total.stopped) == (3, 1, 4.5, "SIGTERM")
    assert total.tokens == {"teacher": 6, "student": 4} and total.errors == ["a: x", "b: y"]
    assert RunSummary.from_attempt(parts[0].attempt() | {"finished": "now"}) == parts[0]
    total.output, total.todo, total.shards, total.merged = "o.jsonl", 3, [0, 0], 3
    assert total.line() == ("3 written, 1 failed, 0 already done, 0 bad rows by 2 workers -> "
                            "o.jsonl (teacher share 60%, 4.5s; 3 merged)")

