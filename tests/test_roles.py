"""Roles at run time: started and closed as one lifetime; templates from the served model."""

from __future__ import annotations

import sys

import pytest

from tessy.backends.registry import BACKENDS
from tessy.config import run_config_from_dict
from tessy.errors import ConfigError, ModelLoadError
from tessy.serving.llama_server import default_threads, shared_threads
from tessy.synthesis.roles import open_roles, predictor_threads, server_threads

EVENTS: list[str] = []


class RecordingBackend:
    """A backend registered by this test: one module and one registry entry, as any other."""

    tokenizer = None

    def __init__(self, config) -> None:
        self.role, self.name = config.role, f"rec-{config.role}"
        self.fail = config.model == "broken"

    async def start(self) -> None:
        EVENTS.append(f"start {self.role}")
        if self.fail:
            raise ModelLoadError(f"{self.role}: cannot load")

    async def close(self) -> None:
        EVENTS.append(f"close {self.role}")


def config(student_model="ok", **student):
    return run_config_from_dict({
        "teacher": {"backend": "recording", "template": "qwen3"},
        "student": {"backend": "recording", "template": "qwen3", "model": student_model, **student},
    })


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setitem(BACKENDS, "recording", f"{__name__}:RecordingBackend")
    monkeypatch.setitem(sys.modules, __name__, sys.modules[__name__])
    EVENTS.clear()
    return EVENTS


async def test_roles_are_closed_after_the_block(recording):
    async with open_roles(config()) as roles:
        assert set(roles) == {"teacher", "student"}
        assert recording == ["start teacher", "start student"]
    assert recording[2:] == ["close student", "close teacher"]


async def test_a_role_that_fails_to_start_closes_those_already_started(recording):
    with pytest.raises(ModelLoadError, match="student: cannot load"):
        async with open_roles(config("broken")):
            pass
    assert recording == ["start teacher", "start student", "close student", "close teacher"]


async def test_an_unknown_backend_names_the_field():
    with pytest.raises(ConfigError, match="teacher.backend: unknown backend 'nope'; choose from"):
        async with open_roles(run_config_from_dict({"teacher": {"backend": "nope"}})):
            pass


async def test_chat_think_over_http_uses_the_served_template_or_names_the_flag(server):
    http = {"teacher": {"base_urls": [server.url], "template": "qwen3"},
            "student": {"base_urls": [server.url], "template": "chat-think"}}
    with pytest.raises(ConfigError, match="--student-template: 'chat-think' needs the model's chat "
                       "template, and the server exposes none: give --student-tokenizer"):
        async with open_roles(run_config_from_dict(http)):
            pass
    server.props = {"chat_template": "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n"
                    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
                    "eos_token": "<|end|>"}
    async with open_roles(run_config_from_dict(http)) as roles:
        template = roles["student"].template
    prompt = template.thinking_prompt("What is 2 + 2?", "")
    assert prompt.startswith("<|system|>Think through the problem step by step")
    assert prompt.endswith("<|user|>What is 2 + 2?\n<|assistant|><think>\n")
    assert template.answer_stop == ("<|end|>",)


def test_a_model_predictor_gets_one_thread_beside_a_managed_llama_server():
    served = {"backend": "llama_server", "model": "m.gguf"}
    remote = {"backend": "openai_http", "base_urls": ["http://127.0.0.1:1/v1"]}

    def threads(teacher, student, strategy="cooperative", **student_extra):
        return predictor_threads(run_config_from_dict({
            "teacher": teacher, "student": {**student, **student_extra},
            "synthesis": {"strategy": strategy}}))

    assert threads(served, remote) == 1  # its cores are taken: torch's spinning threads slow both
    assert threads(remote, remote) == 0  # servers elsewhere: torch's default
    assert threads(remote, served, strategy="teacher-only") == 0  # the idle role starts nothing
    assert threads(served, remote, predictor_threads=3) == 3  # as configured
    with pytest.raises(ConfigError, match="student.predictor_threads"):
        threads(remote, remote, predictor_threads=-1)


def test_two_managed_llama_servers_share_the_cores(tmp_path):
    teacher, student = tmp_path / "teacher.gguf", tmp_path / "student.gguf"
    teacher.write_bytes(b"t" * 9000)
    student.write_bytes(b"s" * 1000)
    # The largest model keeps every core; the other a share by size, at least one.
    assert shared_threads({"teacher": teacher, "student": student}, cores=2) == \
        {"teacher": 2, "student": 1}
    assert shared_threads({"teacher": teacher, "student": student}, cores=40) == \
        {"teacher": 40, "student": 4}
    assert shared_threads({"teacher": teacher, "student": teacher}, cores=8) == \
        {"teacher": 8, "student": 4}  # equal models: the first keeps every core

    def threads(strategy="cooperative", teacher_extra=None, student_extra=None):
        return server_threads(run_config_from_dict({
            "teacher": {"backend": "llama_server", "model": str(teacher), **(teacher_extra or {})},
            "student": {"backend": "llama_server", "model": str(student), **(student_extra or {})},
            "synthesis": {"strategy": strategy}}))

    every = default_threads()
    assert threads() == {"teacher": every, "student": max(1, round(every / 10))}
    assert threads(strategy="teacher-only") == {}  # one server: every core, as before
    assert threads(student_extra={"threads": 3}) == {"teacher": every}  # configured: kept
    assert server_threads(run_config_from_dict({  # the missing one fails at start, named
        "teacher": {"backend": "llama_server", "model": str(tmp_path / "gone.gguf")},
        "student": {"backend": "llama_server", "model": str(student)}})) == {}
    remote = {"backend": "openai_http", "base_urls": ["http://127.0.0.1:1/v1"]}
    assert server_threads(run_config_from_dict({"teacher": remote, "student": {
        "backend": "llama_server", "model": str(student)}})) == {}
