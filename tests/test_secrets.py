"""Credentials reach every request of their own role, in workers too, and nothing tessy writes
or prints."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from fake_server import FakeOpenAIServer
from helpers import problems_file, run_args
from tessy.cli import main
from tessy.secrets import redact, split_userinfo


def everything_written(out: Path) -> str:
    return "\n".join(p.read_text() for p in out.parent.rglob(f"{out.name}*") if p.is_file())


def test_each_role_gets_its_own_key_in_workers_too(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback-key-0000")
    with FakeOpenAIServer() as t, FakeOpenAIServer() as s:
        out = tmp_path / "o.jsonl"
        args = run_args(str(problems_file(tmp_path, 4)), out, t.url, s.url, "--workers", "2",
                        "--teacher-api-key", "sk-teacher-key-1111")
        assert main(args) == 0
        assert t.headers and {h.get("authorization") for h in t.headers} == {
            "Bearer sk-teacher-key-1111"}
        assert s.headers and {h.get("authorization") for h in s.headers} == {
            "Bearer sk-fallback-key-0000"}  # no --student-api-key: the environment's
        written = everything_written(out)
    assert "sk-teacher-key-1111" not in written and "sk-fallback-key-0000" not in written


def test_url_userinfo_is_basic_auth_and_never_stored_or_printed(tmp_path, capsys):
    with FakeOpenAIServer() as t, FakeOpenAIServer() as s:
        t.fail_status, t.fail_message = 400, "bad request for Bearer sk-echoed-token-2222"
        host = t.url.split("//")[1]
        out = tmp_path / "o.jsonl"
        main(run_args(str(problems_file(tmp_path, 2)), out, f"http://alice:hunter2secret@{host}", s.url))
        assert t.headers
        assert {h.get("authorization") for h in t.headers} == {
            "Basic " + base64.b64encode(b"alice:hunter2secret").decode()}
        assert {h.get("host") for h in t.headers} == {host.split("/")[0]}
    printed = capsys.readouterr()
    written = everything_written(out)
    for text in (written, printed.out, printed.err):
        assert "hunter2secret" not in text and "sk-echoed-token-2222" not in text
    assert "bad request for Bearer ***" in written  # the error kept, the token not
    config = json.loads((tmp_path / "o.jsonl.config.json").read_text())
    assert config["teacher"]["base_urls"] == [f"http://{host}"]


def test_redaction_and_userinfo():
    assert redact("Authorization: Bearer abc.def-123456") == "Authorization: Bearer ***"
    assert redact("key sk-proj-AbC123456789 and hf_abcdefghijkl") == "key sk-*** and hf-***"
    assert redact("http://u:p%40ss@host:8000/v1 failed") == "http://***@host:8000/v1 failed"
    assert redact('{"api_key": "abcd1234"}') == '{"api_key": "***"}'
    assert split_userinfo("https://u:p%40ss@[::1]:8000/v1") == ("https://[::1]:8000/v1", "u:p@ss")
    assert split_userinfo("http://host/v1") == ("http://host/v1", None)


def test_run_synthesis_from_python_takes_the_environment_keys(tmp_path, monkeypatch):
    from tessy import run_synthesis
    from tessy.config import run_config_from_dict

    monkeypatch.setenv("TESSY_STUDENT_API_KEY", "sk-student-key-2222")
    for name in ("TESSY_TEACHER_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with FakeOpenAIServer() as t, FakeOpenAIServer() as s:
        role = {"backend": "openai_http", "template": "qwen3"}
        config = run_config_from_dict({
            "inputs": [str(problems_file(tmp_path, 2))], "output": str(tmp_path / "o.jsonl"),
            "teacher": {**role, "base_urls": [t.url]}, "student": {**role, "base_urls": [s.url]}})
        assert run_synthesis(config).written == 2
        assert s.headers and {h.get("authorization") for h in s.headers} == {
            "Bearer sk-student-key-2222"}
        assert not any(h.get("authorization") for h in t.headers)  # nothing set for it
