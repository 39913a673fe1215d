"""What long jobs print: a bar on a terminal, log lines (or JSON) elsewhere, nothing with -q."""

from __future__ import annotations

import io
import json

import pytest

from tessy.cli import main
from tessy.progress import Progress, trainer_log_line


def test_without_a_terminal_progress_is_a_line_not_a_bar(tmp_path, capsys):
    assert main(["synthesize", "--dry-run", "-o", str(tmp_path / "o.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("problems: 8/8 done") == 1 and len(err.splitlines()) == 1


def test_json_progress_for_batch_jobs(tmp_path, capsys):
    assert main(["synthesize", "--dry-run", "-o", str(tmp_path / "o.jsonl"), "--progress", "json",
                 "--progress-every", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [r["done"] for r in rows] == list(range(1, 9)) and rows[-1]["total"] == 8


def test_progress_lines_come_every_so_often_and_once_at_the_end():
    out = io.StringIO()
    bar = Progress(3, "problems", "problem", "log", every=0, stream=out)
    bar.update(1, failed=0)
    bar.update(2, failed=1)
    bar.close()  # nothing new since the last line: no repeat
    assert out.getvalue().splitlines() == ["problems: 1/3 done, 0s, failed 0",
                                           "problems: 3/3 done, 0s, failed 1"]
    quiet = io.StringIO()
    bar = Progress(3, "problems", "problem", False, stream=quiet)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""


def test_trainer_logs_are_formatted_lines():
    logs = {"loss": "1.0123", "grad_norm": 2.5, "learning_rate": 5e-05, "epoch": 0.5,
            "total_flos": 1.0}
    assert trainer_log_line(logs, 3, 10) == \
        "step 3/10  epoch 0.50  loss 1.01  grad_norm 2.5  learning_rate 5.00e-05"


def test_quiet_prints_only_the_summary_even_while_loading_a_model(tiny_backbone, tmp_path,
                                                                  capsys, monkeypatch):
    pytest.importorskip("transformers")
    from transformers.utils import logging

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # both restored after the test
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")
    logging.enable_progress_bar()
    args = ["synthesize", "--strategy", "student-only", "--student", str(tiny_backbone),
            "--student-template", "plain-think", "--limit", "1", "--max-thinking-tokens", "4",
            "--max-answer-tokens", "2", "--student-device", "cpu"]
    try:
        assert main([*args, "-o", str(tmp_path / "a.jsonl"), "--progress", "bar"]) == 0
        assert "Loading weights" in capsys.readouterr().err  # what -q must silence
        logging.enable_progress_bar()
        assert main([*args, "-o", str(tmp_path / "b.jsonl"), "-q"]) == 0
        captured = capsys.readouterr()
    finally:  # -q set the variable for the process: undo it for the tests that follow
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
        logging.enable_progress_bar()
        logging.set_verbosity_warning()
    assert captured.err == "" and len(captured.out.splitlines()) == 1
