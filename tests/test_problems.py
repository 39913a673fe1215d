"""Reading problems: formats, fields, templates, bad rows; exporting records."""

from __future__ import annotations

import json

import pytest

from helpers import write_jsonl
from tessy.errors import ConfigError, InputError
from tessy.io.export import export
from tessy.io.problems import ProblemReader


def test_prompt_fields_and_ids(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [
        {"id": 7, "prompt": "a?"},
        {"question": "b?"},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "c?"}]},
    ])
    problems = list(ProblemReader([src]))
    assert [p.prompt for p in problems] == ["a?", "b?", "c?"]
    assert problems[0].id == "7" and len(problems[1].id) == 16


def test_bad_rows_are_reported_with_file_line_and_skipped(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n{not json\n{"prompt": ""}\n{"other": 1}\n'
                     b'\xff\xfe\n{"prompt": "ok"}\n[1, 2]\n')
    reader = ProblemReader([str(path)])
    assert [p.prompt for p in reader] == ["ok"]
    msgs = reader.skipped
    assert msgs[0].startswith(f"{path}:2: invalid JSON")
    assert msgs[1] == f"{path}:3: empty prompt"
    assert msgs[2].startswith(f"{path}:4: no prompt")
    assert msgs[3].startswith(f"{path}:5: not UTF-8")
    assert msgs[4] == f"{path}:6: duplicate id {reader_id('ok')!r}, skipped"
    assert msgs[5].startswith(f"{path}:7: expected a JSON object")


def reader_id(prompt):
    from tessy.records import prompt_id

    return prompt_id(prompt)


def test_multiple_choice_template(tmp_path):
    src = write_jsonl(tmp_path / "mc.jsonl", [
        {"id": "q1", "question": "Pick one.", "options": ["red", "blue"]}])
    template = ("{{ question }}\n{% for o in options %}{{ loop.index0 | letter }}) {{ o }}\n"
                "{% endfor %}Answer with the letter.")
    (problem,) = ProblemReader([src], template)
    assert problem.prompt == "Pick one.\nA) red\nB) blue\nAnswer with the letter."


def test_template_missing_field_names_the_row(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", [{"id": "x", "q": "?"}])
    reader = ProblemReader([src], "{{ question }}")
    assert list(reader) == []
    assert reader.skipped[0].startswith(f"{src}:1: prompt template")


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet", "dataset"])
def test_other_formats(tmp_path, fmt):
    rows = [{"id": "a", "prompt": "one?"}, {"id": "b", "prompt": "two?"}]
    if fmt == "json":
        path = tmp_path / "p.json"
        path.write_text(json.dumps(rows))
    elif fmt == "csv":
        path = tmp_path / "p.csv"
        path.write_text("id,prompt\na,one?\nb,two?\n")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "p.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import datasets

        path = tmp_path / "ds"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    assert [(p.id, p.prompt) for p in ProblemReader([str(path)])] == [("a", "one?"), ("b", "two?")]


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(ProblemReader([str(tmp_path / "nope.jsonl")]))


@pytest.mark.parametrize("fmt,chat_key", [("parquet", "messages"), ("dataset", "dialogs")])
def test_export(tmp_path, fmt, chat_key):
    import datasets

    src = write_jsonl(tmp_path / "out.jsonl", [
        {"id": "a", "dialogs": [{"role": "user", "content": "q"},
                                {"role": "assistant", "content": "<think>\nx\n</think>\n\ny"}],
         "tessy": {"switches": 1}}])
    dest = str(tmp_path / ("out.parquet" if fmt == "parquet" else "ds"))
    assert export(src, dest, fmt, chat_key) == 1
    ds = (datasets.Dataset.from_parquet(dest) if fmt == "parquet"
          else datasets.load_dataset(dest, split="train"))  # the hub layout: as users load data
    assert ds[0][chat_key][1]["content"].endswith("y") and ds[0]["tessy"]["switches"] == 1
    assert [p.id for p in ProblemReader([dest])] == ["a"]  # and tessy reads it back


def test_export_puts_records_in_the_order_of_the_runs_inputs(tmp_path):
    import pyarrow.parquet as pq

    from tessy.cli import main

    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "prompt": f"{i}?"} for i in range(4)])
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", problems, "-o", str(out), "-q", "--dry-run", "--samples", "2"]) == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(reversed(lines)) + "\n")  # as if they had finished the other way round
    assert main(["export", str(out), str(tmp_path / "d.parquet"), "--no-card"]) == 0
    ids = pq.read_table(tmp_path / "d.parquet").column("id").to_pylist()
    assert ids == [f"q{i}#{k}" for i in range(4) for k in range(2)]


def test_template_renders_in_a_sandbox_that_refuses_python_internals(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "q"}) + "\n")
    probe = "{{ ''.__class__.__mro__[1].__subclasses__() | length }}"
    with pytest.raises(ConfigError, match="--prompt-template: refused by the sandbox: access to "
                       "attribute '__class__' of 'str' object is unsafe") as info:
        list(ProblemReader([str(path)], probe))
    assert "\n" not in str(info.value)
    assert [p.prompt for p in ProblemReader([str(path)], "Q: {{ question | upper }}")] == ["Q: Q"]
