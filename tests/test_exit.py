"""Exit codes scripts can rely on: 3 when problems failed (a bad key, a dead endpoint), 0 with
--allow-failures; the same with --workers."""

from __future__ import annotations

from fake_server import FakeOpenAIServer
from helpers import problems_file, run_args
from tessy.cli import main


def test_failed_problems_exit_3_unless_allowed(tmp_path, capsys):
    with FakeOpenAIServer() as t, FakeOpenAIServer() as s:
        t.fail_status = 401  # a bad key: every request refused
        data = str(problems_file(tmp_path, 3))
        assert main(run_args(data, tmp_path / "a.jsonl", t.url, s.url)) == 3
        assert "0 written, 3 failed" in capsys.readouterr().out
        assert main(run_args(data, tmp_path / "b.jsonl", t.url, s.url, "--allow-failures")) == 0
        assert main(run_args(data, tmp_path / "c.jsonl", t.url, s.url, "--workers", "2")) == 3
        assert "exited with" not in capsys.readouterr().err  # the workers did not crash
        t.fail_status = None  # the key fixed: a 4xx recurs, so only --retry-failed asks again
        assert main(run_args(data, tmp_path / "a.jsonl", t.url, s.url, "--retry-failed")) == 0
        assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 3
