"""Many problems: durable records, resume, error rows, effective config."""

from __future__ import annotations

import json

from conftest import fake_roles
from helpers import ids
from tessy.config import RunConfig, SynthesisConfig
from tessy.errors import RequestRejected
from tessy.io.writer import RecordWriter
from tessy.records import Problem
from tessy.synthesis.run_loop import synthesize

PROBLEMS = [Problem(f"p{i}", f"What is {i} + 1?") for i in range(12)]


async def test_records_and_config_are_written(tmp_path):
    out = tmp_path / "out.jsonl"
    config = RunConfig(output=str(out), synthesis=SynthesisConfig(concurrency=4))
    summary = await synthesize(config, PROBLEMS, fake_roles(), progress=False)
    assert summary.written == 12 and sorted(ids(out)) == sorted(p.id for p in PROBLEMS)
    record = json.loads(out.read_text().splitlines()[0])
    t = record["tessy"]
    assert record["dialogs"][0]["role"] == "user"
    assert t["config_hash"] == config.config_hash() and t["switches"] >= 1
    assert set(t["tokens"]) == {"teacher", "student"} and t["student_tokens"]["teacher"] > 0
    saved = json.loads((tmp_path / "out.jsonl.config.json").read_text())
    assert saved["synthesis"]["concurrency"] == 4


async def test_resume_after_an_interrupted_run_gives_every_problem_once(tmp_path):
    out = tmp_path / "out.jsonl"
    config = RunConfig(output=str(out))
    await synthesize(config, PROBLEMS[:5], fake_roles(), progress=False)
    with open(out, "a") as fh:  # a crash in the middle of writing the next record
        fh.write('{"id": "p5", "dialogs": [{"role": "us')
    roles = fake_roles()
    summary = await synthesize(config, PROBLEMS, roles, progress=False)
    assert summary.already_done == 5 and summary.written == 7
    assert sorted(ids(out)) == sorted(p.id for p in PROBLEMS)
    asked = {r.affinity for rt in roles.values() for r in rt.backend.requests}
    assert asked == {p.id for p in PROBLEMS[5:]}  # finished work is not redone


class RejectingBackend:
    """Rejects every request for one problem, as a server does for a too-long prompt."""

    def __init__(self, inner, bad_id):
        self.inner, self.bad_id = inner, bad_id
        self.name, self.tokenizer, self.counters = inner.name, None, inner.counters

    async def count_tokens(self, text):
        return await self.inner.count_tokens(text)

    async def generate(self, request):
        if request.affinity == self.bad_id:
            raise RequestRejected("HTTP 400: prompt too long")
        async for d in self.inner.generate(request):
            yield d


async def test_a_failed_problem_becomes_an_error_row_and_is_retried_next_run(tmp_path):
    out = tmp_path / "out.jsonl"
    config = RunConfig(output=str(out))
    roles = fake_roles()
    roles["student"].backend = RejectingBackend(roles["student"].backend, "p3")
    summary = await synthesize(config, PROBLEMS[:6], roles, progress=False)
    assert summary.failed == 1 and summary.written == 5
    errors = [json.loads(x) for x in open(tmp_path / "out.jsonl.errors.jsonl")]
    assert errors[0]["id"] == "p3" and "prompt too long" in errors[0]["error"]
    summary = await synthesize(config, PROBLEMS[:6], fake_roles(), progress=False)
    assert summary.written == 1 and sorted(ids(out)) == sorted(p.id for p in PROBLEMS[:6])


def test_writer_never_duplicates_an_id(tmp_path):
    with RecordWriter(tmp_path / "o.jsonl") as w:
        w.write({"id": "a"})
        w.write({"id": "a"})
    with RecordWriter(tmp_path / "o.jsonl") as w:
        w.write({"id": "a"})
    assert ids(tmp_path / "o.jsonl") == ["a"]
