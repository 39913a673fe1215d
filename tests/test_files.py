"""Files in shared folders: links are not followed, temporary names are not guessable, and an
output that is not tessy's (or is an input) is refused with nothing touched."""

from __future__ import annotations

import json
import os

import pytest

from helpers import problems_file
from tessy.cli import main


@pytest.fixture
def data(tmp_path):
    return problems_file(tmp_path, 3, "p.jsonl")


def run(data, out, *extra):
    return main(["synthesize", str(data), "-o", str(out), "--dry-run", "-q", *extra])


def test_a_link_at_a_sibling_file_is_not_written_through(tmp_path, data, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "o.jsonl"
    (tmp_path / "o.jsonl.errors.jsonl").symlink_to(victim)
    assert run(data, out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a symbolic link" in err[0]
    assert victim.read_text() == "precious\n"


def test_a_link_at_the_old_temporary_name_is_left_alone(tmp_path, data):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "o.jsonl"
    (tmp_path / f"o.jsonl.config.json.tmp{os.getpid()}").symlink_to(victim)
    assert run(data, out) == 0
    assert victim.read_text() == "precious\n"
    assert json.loads((tmp_path / "o.jsonl.config.json").read_text())["config_hash"]
    assert not list(tmp_path.glob(".o.jsonl.config.json.*.tmp"))  # no temporary left over


def test_an_output_that_is_not_tessys_or_is_an_input_is_refused(tmp_path, data, capsys):
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "mine", "text": "not a record"}\n{"id": "cut')
    before = notes.read_bytes(), data.read_bytes()
    assert run(data, notes) == 1
    assert "exists and is not a tessy output" in capsys.readouterr().err
    assert run(data, data) == 1
    assert "is one of the inputs" in capsys.readouterr().err
    assert (notes.read_bytes(), data.read_bytes()) == before
    assert not list(tmp_path.glob("notes.jsonl.*")) and not list(tmp_path.glob("p.jsonl.*"))
    out = tmp_path / "o.jsonl"  # a tessy output resumes, with or without its config beside it
    assert run(data, out) == 0
    (tmp_path / "o.jsonl.config.json").unlink()
    assert run(data, out) == 0 and len(out.read_text().splitlines()) == 3


def test_export_and_predictor_train_refuse_a_folder_that_is_not_empty(tmp_path, data, capsys):
    out = tmp_path / "o.jsonl"
    assert run(data, out) == 0
    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    assert main(["export", str(out), str(dest)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["export", str(out), str(dest), "--overwrite", "--no-card"]) == 0
    model = tmp_path / "pred"
    model.mkdir()
    (model / "keep.txt").write_text("mine")
    assert main(["predictor", "train", str(tmp_path / "labels.jsonl"), "-o", str(model)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert (model / "keep.txt").read_text() == "mine"
