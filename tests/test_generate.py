"""`tessy problems`: a generated problem set whose gold answers the report's graders accept."""

from __future__ import annotations

import re

import pytest

from tessy.cli import main
from tessy.data.generate import generate
from tessy.grading.answers import matches
from tessy.records import parse_record


def _graded(row, answer):
    record = {"id": row["id"], "answer": row["answer"], "dialogs": [
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": f"<think>\nwork\n</think>\n\n{answer}"}]}
    sample = parse_record(record, "x:1")
    return matches(sample.answer, sample.gold)


def test_a_seeded_split_of_both_kinds_with_right_gold_answers():
    train, held = generate(40, seed=3, held_out=0.25)
    assert (len(train), len(held)) == (30, 10)
    assert generate(40, seed=3, held_out=0.25) == (train, held)
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    rows = train + held
    letters = [r for r in rows if re.fullmatch("[A-D]", r["answer"])]
    assert len(letters) == 20
    for row in letters:  # the gold letter is the option equal to a × b − c
        a, b, c = map(int, re.search(r"What is (\d+) × (\d+) − (\d+)", row["prompt"]).groups())
        options = dict(re.findall(r"\(([A-D])\) (-?\d+)", row["prompt"]))
        assert int(options[row["answer"]]) == a * b - c
        assert len(set(options.values())) == 4
    for row in rows:
        assert _graded(row, f"So it is \\boxed{{{row['answer']}}}.")
        assert _graded(row, f"Answer: {row['answer']}")
        wrong = "A" if row["answer"] != "A" else "B"
        if not row["answer"].isalpha():
            wrong = str(int(row["answer"]) + 1)
        assert not _graded(row, f"Answer: {wrong}")


def test_the_cli_writes_both_files_and_never_overwrites(tmp_path, capsys):
    assert main(["problems", str(tmp_path / "set"), "--count", "10"]) == 0
    train = (tmp_path / "set" / "train.jsonl").read_bytes()
    assert main(["problems", str(tmp_path / "set"), "--count", "50", "--seed", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.jsonl: exists" in err[0]
    assert (tmp_path / "set" / "train.jsonl").read_bytes() == train


@pytest.mark.parametrize(("args", "message"), [(["--count", "1"], "count: must be >= 2"),
                                               (["--held-out", "1.5"], "--held-out: must be")])
def test_bad_settings_get_one_line(tmp_path, capsys, args, message):
    assert main(["problems", str(tmp_path / "p"), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
