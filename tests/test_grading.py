"""Grading: code candidates, HumanEval and stdin/stdout tests run in the sandbox, reasoning-gym
scorers, bad grading fields, and grades in report and export."""

from __future__ import annotations

import json

import pytest

from helpers import write_jsonl
from tessy.cli import main
from tessy.errors import InputError
from tessy.grading import Gradable, LocalSandbox, Reason, check_row, grade_all, summarize
from tessy.grading.code import candidate, same_output


def record(pid: str, response: str, **fields) -> dict:
    return {"id": pid, **fields, "dialogs": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": f"<think>\nhm\n</think>\n\n{response}"}]}


@pytest.fixture(scope="module")
def box():
    with LocalSandbox() as sandbox:
        yield sandbox


def test_candidate_is_the_last_fenced_block_else_the_answer():
    assert candidate("a\n```python\nx = 1\n```\nthen\n```\ny = 2\n```\nbye") == "y = 2"
    assert candidate("```py\nprint(1)\n") == "print(1)"  # an unclosed fence runs to the end
    assert candidate("print(3)") == "print(3)"  # no fence: the answer, if it is Python
    assert candidate("The answer is 3.") is None


def test_the_stated_answer_is_the_last_statement_on_its_own_line():
    from tessy.grading.answers import final_span

    assert final_span("So the final answer is:\nAnswer: -4") == "-4"
    assert final_span("The answer is 7.\nDone.") == "7."


def test_outputs_compare_as_contest_judges_do():
    assert same_output("1 2  \n3\n\n\n", "1 2\n3")
    assert not same_output("1 2\n3", "1 2 3")
    assert not same_output(" 1", "1")  # leading whitespace counts


HE = {"code_prompt": "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n"
                     "    \"\"\"Sum of xs.\"\"\"\n",
      "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n",
      "entry_point": "total"}
STDIO = {"tests": [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6"}]}


def test_code_is_graded_by_running_it(box):
    items = [
        Gradable("```python\ndef total(xs):\n    return sum(xs)\n```", HE),  # whole function
        Gradable("```python\n    return sum(xs)\n```", HE),  # the body only: the stub is kept
        Gradable("```python\ndef total(xs):\n    return 3\n```", HE),
        Gradable("I would sum them.", HE),
        Gradable("```python\ndef total(xs):\n    return xs[7]\n```", HE),
        Gradable("```python\na, b = map(int, input().split())\nprint(a + b, ' ')\n```", STDIO),
        Gradable("```python\nprint(5)\n```", STDIO),
        Gradable("```python\nimport time\ntime.sleep(60)\n```", STDIO | {"grader": "stdio"}),
    ]
    from tessy.grading.sandbox import Limits

    grades = grade_all(items, box, limits=Limits(wall_seconds=3))  # the sleeper need not wait 20 s
    assert [g.passed for g in grades] == [True, True, False, False, False, True, False, False]
    assert [g.reason for g in grades[2:5]] == [Reason.WRONG_ANSWER, Reason.NO_CODE,
                                                Reason.RUNTIME_ERROR]
    assert "IndexError" in grades[4].detail
    assert grades[6].reason == Reason.WRONG_ANSWER and grades[6].detail.startswith("test 2/2")
    assert grades[7].reason == Reason.TIMEOUT


def test_answers_and_reasoning_gym_scorers(box):
    from tessy.grading.gym import generate

    entries = generate(box, "chain_sum", seed=3, size=2)
    assert len(entries) == 2 and all({"question", "answer"} <= set(e) for e in entries)
    fields = [{"grader": "reasoning_gym:chain_sum", "gym_entry": json.dumps(e)} for e in entries]
    grades = grade_all([
        Gradable(f"So the sum is clear.\nAnswer: {entries[0]['answer']}", fields[0]),
        Gradable("Answer: 123456789", fields[1]),
        Gradable("", fields[1]),
        Gradable("The answer is 42.", {}, gold="42"),
        Gradable("no idea", {}),
    ], box)
    assert [g and g.passed for g in grades] == [True, False, False, True, None]
    assert grades[1].reason == Reason.WRONG_ANSWER and grades[2].reason == Reason.NO_ANSWER
    summary = summarize(grades)
    assert summary["graded"] == 4 and summary["passed"] == 2
    assert summary["interval"][0] < 0.5 < summary["interval"][1]


def test_an_unknown_gym_task_is_one_line(box):
    from tessy.grading.gym import generate

    with pytest.raises(InputError, match="'chain_summ': no such task.*chain_sum"):
        generate(box, "chain_summ", seed=0, size=1)


@pytest.mark.parametrize("fields, message", [
    ({"tests": "not json"}, "`tests` must be a non-empty list"),
    ({"tests": [{"input": "1"}]}, "`tests` must be a non-empty list"),
    ({"tests": []}, "`tests` must be a non-empty list"),
    ({"test": "def check(c): pass"}, "needs an `entry_point`"),
    ({"grader": "lean"}, "unknown grader 'lean'"),
    ({"grader": "reasoning_gym:chain_sum"}, "needs `gym_entry`"),
])
def test_bad_grading_fields_are_one_line_errors(fields, message):
    with pytest.raises(InputError, match=message):
        check_row(fields, None, "p.jsonl:3")
    with pytest.raises(InputError, match="^p.jsonl:3: "):
        check_row(fields, None, "p.jsonl:3")


def test_bad_rows_are_skipped_with_file_and_line(tmp_path):
    from tessy.io.problems import ProblemReader

    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "add", "tests": [{"input": "1 2", "output": "3"}]},
        {"id": "b", "prompt": "add", "tests": {"input": "1 2"}},
        {"id": "c", "prompt": "f", "test": "def check(c): pass"},
    ])
    reader = ProblemReader([path])
    assert [p.id for p in reader] == ["a"]
    assert [line.split(": ")[0] for line in reader.skipped] == [f"{path}:2", f"{path}:3"]


def test_problems_from_humaneval_and_gym_decontaminated(tmp_path, capsys):
    bench = write_jsonl(tmp_path / "bench.jsonl", [])
    out = tmp_path / "probs"
    assert main(["problems", str(out), "--source", "humaneval", "--source", "gym:chain_sum",
                 "--count", "20", "--held-out", "0.25", "--against", bench]) == 0
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (out / "held_out.jsonl").read_text().splitlines()]
    assert len(held) == 10 and len(train) + len(held) <= 40
    assert {r["grader"] for r in held} == {"humaneval", "reasoning_gym:chain_sum"}
    he = next(r for r in train if r["grader"] == "humaneval")
    assert {"test", "entry_point", "code_prompt"} <= set(he) and he["code_prompt"] in he["prompt"]
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    # the train split against itself as a benchmark: every problem overlaps, all are dropped
    again = tmp_path / "again"
    assert main(["problems", str(again), "--source", "humaneval", "--source", "gym:chain_sum",
                 "--count", "20", "--held-out", "0.25", "--against",
                 str(out / "train.jsonl")]) == 0
    assert (again / "train.jsonl").read_text() == ""
    dropped = [json.loads(line) for line in (again / "dropped.jsonl").read_text().splitlines()]
    assert {d["id"] for d in dropped} == {r["id"] for r in train}
    assert "overlapping train problems dropped" in capsys.readouterr().out


def test_overlaps_are_copies_by_default_and_fuzzy_with_the_same_numbers():
    from tessy.data.decontaminate import overlaps

    bench = [("bench: 1", "What is 4 - 1 - 7? Give the exact value, then stop and explain.")]
    train = [{"id": "copy", "question": "WHAT is 4 - 1 - 7 ?? give the exact value, then stop "
                                        "and explain"},
             {"id": "wrapped", "prompt": "Solve this. What is 4 - 1 - 7? Give the exact value, "
                                         "then stop and explain. Show your work."},
             {"id": "other numbers", "question": "What is 4 - 1 - 8? Give the exact value, "
                                                 "then stop and explain."},
             {"id": "edited", "question": "What is 4 - 1 - 7? Give its exact value, then stop "
                                          "and explain."}]
    assert [(o.id, o.reference) for o in overlaps(train, bench)] == [
        ("copy", "bench: 1"), ("wrapped", "bench: 1")]
    assert [o.id for o in overlaps(train, bench, threshold=90)] == ["copy", "wrapped", "edited"]


def test_templated_problems_are_not_copies_of_each_other(tmp_path):
    out = tmp_path / "probs"
    assert main(["problems", str(out), "--source", "gym:propositional_logic", "--count",
                 "20"]) == 0
    assert len((out / "train.jsonl").read_text().splitlines()) == 16
    assert not (out / "dropped.jsonl").exists()


def test_unknown_source_and_task_write_nothing(tmp_path):
    assert main(["problems", str(tmp_path / "x"), "--source", "mbpp"]) == 1
    assert main(["problems", str(tmp_path / "y"), "--source", "gym:no_such_task",
                 "--count", "2"]) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_report_and_export_grade_code(tmp_path, capsys):
    rows = [record("r", "```python\ndef total(xs):\n    return sum(xs)\n```", **HE),
            record("w", "```python\ndef total(xs):\n    return 0\n```", **HE),
            record("s", "```python\nprint(sum(map(int, input().split())))\n```", **STDIO),
            record("n", "Answer: 7", answer="7"),
            record("u", "no gold here")]
    data = write_jsonl(tmp_path / "coop.jsonl", rows)
    figs_path = tmp_path / "r.json"
    assert main(["report", data, "--no-nll", "-q", "-o", str(tmp_path / "r.html"),
                 "--json", str(figs_path)]) == 0
    d = json.loads(figs_path.read_text())["datasets"]["coop"]
    assert d["gold_answers"] == 4 and d["accuracy"] == 0.75
    assert d["grade_reasons"] == {"passed": 3, "wrong answer": 1}
    assert 0 < d["accuracy_interval"][0] < 0.75 < d["accuracy_interval"][1] < 1
    assert "4 graded: 3 passed, 1 wrong answer" in capsys.readouterr().out
    assert "Graded answers" in (tmp_path / "r.html").read_text()
    dest = tmp_path / "kept.parquet"
    assert main(["export", data, str(dest), "--only-correct"]) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(dest).column("id").to_pylist() == ["r", "s", "n"]
    card = (tmp_path / "kept.README.md").read_text()
    assert "3 of 4: 75.0%" in card and "| failed: wrong answer | 1 |" in card
    assert "only the passing records" in card


def test_samples_are_problems_of_their_own_resumed_exactly_once(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    args = ["synthesize", "--dry-run", "-q", "-o", str(out), "--limit", "2", "--samples", "3"]
    assert main(args) == 0
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"{p}#{k}" for p in {i.split("#")[0] for i in ids}
                                 for k in range(3)) and len(ids) == 6
    assert main(args) == 0
    assert "nothing to do: 6 already done" in capsys.readouterr().out
    assert main(args[:-1] + ["4"]) == 0  # more samples later: only the new ones are written
    assert len(out.read_text().splitlines()) == 8


def test_a_remote_sandbox_behind_the_same_interface(tmp_path):
    from sandbox_fusion_standin import SandboxFusionStandIn
    from tessy.grading import open_executor

    with SandboxFusionStandIn() as service:
        executor = open_executor(service.url)
        try:
            grades = grade_all([Gradable("```python\ndef total(xs):\n    return sum(xs)\n```", HE),
                                Gradable("```python\nprint(5)\n```", STDIO)], executor)
        finally:
            executor.close()
        assert [g.passed for g in grades] == [True, False]
        assert grades[1].detail.startswith("test 2/2")
        assert {r["language"] for r in service.requests} == {"python"}
        assert service.requests[-1]["stdin"] == "10 -4\n"
    # a service that is not there: every job is a sandbox error, not a wrong answer
    executor = open_executor(service.url)
    grade = grade_all([Gradable("```python\nprint(5)\n```", STDIO)], executor)[0]
    executor.close()
    assert grade.reason == Reason.SANDBOX_ERROR and "SandboxFusion" in grade.detail


def test_problem_rows_need_nothing_else_to_synthesize_and_report(tmp_path, capsys):
    probs, out = tmp_path / "probs", tmp_path / "o.jsonl"
    assert main(["problems", str(probs), "--source", "humaneval", "--count", "4"]) == 0
    assert main(["synthesize", str(probs / "train.jsonl"), "--dry-run", "-q", "-o", str(out),
                 "--samples", "2"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 6 and all({"test", "entry_point", "grader"} <= set(r) for r in rows)
    assert main(["report", str(out), "--no-nll", "-q", "-o", str(tmp_path / "r.html")]) == 0
    assert "6 graded:" in capsys.readouterr().out  # the fake models write no code: all fail


def test_the_run_line_never_runs_code_without_isolation(tmp_path, capsys, monkeypatch):
    probs, out = tmp_path / "probs", tmp_path / "o.jsonl"
    assert main(["problems", str(probs), "--source", "humaneval", "--count", "4"]) == 0
    monkeypatch.setattr("tessy.grading.sandbox.bwrap_path", lambda: None)
    monkeypatch.setattr("tessy.grading.sandbox.unshare_works", lambda: False)
    monkeypatch.setattr("tessy.grading.sandbox.LocalSandbox.__init__", None)  # opened: a failure
    assert main(["synthesize", str(probs / "train.jsonl"), "--dry-run", "-q", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "3 code answers not graded (no sandbox isolation here)" in line, line
    assert "accuracy" not in line
