"""One row never stops a run: rows whose values cannot be written back, unreadable JSON, huge
CSV fields and template errors are one-line skips; records with wrong fields are one-line
errors in every reader."""

from __future__ import annotations

import json

import pytest

from tessy.cli import main

GOOD = '{"id": "ok", "prompt": "Add 1 and 2."}'


def test_rows_that_cannot_be_written_or_read_are_skipped_before_any_model_time(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    lines = [GOOD,
             '{"id": "big", "prompt": "x", "n": 123456789012345678901234567890}',
             '{"id": "sur", "prompt": "x \\ud800"}',
             '{"id": "nan", "prompt": "x", "v": NaN}',
             '{"id": "inf", "prompt": "x", "v": [Infinity]}',
             '{"id": "deep", "prompt": "x", "v": ' + "[" * 100_000 + "]" * 100_000 + "}",
             '{"id": "digits", "prompt": "x", "v": ' + "9" * 5000 + "}"]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", str(path), "-o", str(out), "--dry-run", "-q"]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert [line.split(": ")[0] for line in skipped] == [f"skipped {path}:{n}" for n in range(2, 8)]
    assert "1 written, 0 failed, 0 already done, 6 bad rows" in captured.out
    assert "Traceback" not in captured.err


def test_a_csv_field_over_the_limit_skips_its_row(tmp_path, capsys):
    path = tmp_path / "p.csv"
    path.write_text(f"id,prompt\na,Add 1 and 2.\nb,{'x' * 200_000}\nc,Add 3 and 4.\n")
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", str(path), "-o", str(out), "--dry-run", "-q"]) == 0
    captured = capsys.readouterr()
    assert f"skipped {path}:3: unreadable CSV row" in captured.err
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] in (["a", "c"], ["c", "a"])


@pytest.mark.parametrize("template, row, message", [
    ("{{ prompt }}!", {"self": "me"}, None),
    ("{{ 1 / zero }}", {"zero": 0}, "ZeroDivisionError"),
    ("{{ a + b }}", {"a": "x", "b": 1}, "TypeError"),
])
def test_template_errors_skip_the_row(tmp_path, capsys, template, row, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "r", "prompt": "p", **row}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", str(path), "-o", str(out), "--dry-run", "-q",
                 "--prompt-template", template]) == 0
    err = capsys.readouterr().err
    if message is None:  # a field named `self` no longer breaks every row
        assert json.loads(out.read_text())["dialogs"][0]["content"] == "p!"
    else:
        assert f"skipped {path}:1: prompt template: {message}" in err


@pytest.mark.parametrize("change, message", [
    (lambda r: r["tessy"]["segments"][0].update(role="narrator"), "is 'narrator', not teacher"),
    (lambda r: r["tessy"]["segments"][0].update(start="0"), "offsets"),
    (lambda r: r["tessy"].update(segments="all"), "must be a list"),
    (lambda r: r["tessy"].update(tokens=["x"]), "`tessy.tokens` must map"),
])
def test_records_with_wrong_fields_are_one_line_errors(tmp_path, capsys, change, message):
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", "--dry-run", "-q", "-o", str(out), "--limit", "2"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    change(rows[1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    for args in (["report", str(bad), "--no-nll", "-q", "-o", str(tmp_path / "r.html")],
                 ["show", str(bad), "-n", "1"],
                 ["export", str(bad), str(tmp_path / "x.parquet")]):
        assert main(args) == 1, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"Error: {bad}:2: ") and message in err[0]


def test_merge_names_a_record_without_an_id(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    shards = tmp_path / "o.jsonl.shards"
    shards.mkdir()
    (shards / "1-of-2.jsonl").write_text('{"id": "a", "tessy": {}}\n{"tessy": {}}\n')
    assert main(["merge", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: {shards / '1-of-2.jsonl'}:2: not a record with an `id`"]


def test_terminal_and_cards_show_data_as_text(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert main(["synthesize", "--dry-run", "-q", "-o", str(out), "--limit", "1"]) == 0
    record = json.loads(out.read_text())
    evil = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;title\x07"
    record["dialogs"][0]["content"] += evil
    record["id"] = "id" + evil
    record["tessy"]["models"]["teacher"] = "x` <img src=x onerror=alert(1)> [a](javascript:alert(1))\n# H"
    bad = tmp_path / "$evil$_{.jsonl"
    bad.write_text(json.dumps(record) + "\n")
    capsys.readouterr()
    assert main(["show", str(bad)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b]" not in shown and "\x07" not in shown and "\\x1b]52;c;" in shown
    assert main(["show", str(bad), "--id", "nope" + evil]) == 1
    assert "\x1b" not in capsys.readouterr().err
    assert main(["report", str(bad), "--no-nll", "-q", "-o", str(tmp_path / "r.html")]) == 0
    assert main(["export", str(bad), str(tmp_path / "x.parquet")]) == 0
    card = (tmp_path / "x.README.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("| model |"))
    assert "``x` <img src=x onerror=alert(1)> [a](javascript:alert(1)) # H``" in line
    assert line.count("|") == 4  # the table row stays one row of three cells
    for args, message in ((["--license", "mit\nx: y"], "--license"),
                          (["--language", "en]"], "--language")):
        assert main(["export", str(bad), str(tmp_path / "y.parquet"), *args]) == 1
        assert message in capsys.readouterr().err
