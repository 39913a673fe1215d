"""Configuration dataclasses, one per concern; each field carries its help text.

Validation lives in `__post_init__` and raises `ConfigError` naming the field and the rule.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tessy.errors import ConfigError

BACKENDS = ("openai_http", "local", "fake")
MODES = ("stream", "step")
SCHEDULERS = ("async", "lockstep")
STRATEGIES = ("cooperative", "teacher-only", "student-only")


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


def _check(ok: bool, where: str, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {rule}")


_KINDS: dict[str, Any] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check_types(obj: Any, where: str) -> None:
    """Reject scalar values of the wrong type early (they come from CLI, TOML or JSON)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        parts = [p.strip() for p in str(f.type).split("|")]
        if value is None and "None" in parts:
            continue
        kind = _KINDS.get(parts[0])
        if kind is None:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and parts[0] != "bool"):
            raise ConfigError(f"{where}.{f.name}: expected {parts[0]}, got {value!r}")


@dataclass
class SamplingConfig:
    """Sampling settings sent with every request of one role."""

    temperature: float = _help("Softmax temperature; 0 means greedy.", default=0.6)
    top_p: float = _help("Nucleus sampling mass.", default=0.95)
    top_k: int | None = _help("Keep only the k most likely tokens (None: off).", default=None)
    min_p: float | None = _help("Drop tokens below min_p x p(max) (None: off).", default=None)
    seed: int | None = _help("Base seed; each problem derives its own from it.", default=None)
    extra: dict[str, Any] = _help(
        "Extra fields passed through in the request body (e.g. repetition_penalty).",
        default_factory=dict,
    )

    def validate(self, where: str) -> None:
        """Check ranges; `where` names the owner in messages."""
        _check_types(self, where)
        _check(self.temperature >= 0, f"{where}.temperature", "must be >= 0")
        _check(0 < self.top_p <= 1, f"{where}.top_p", "must be in (0, 1]")
        _check(self.top_k is None or self.top_k > 0, f"{where}.top_k", "must be > 0")
        _check(self.min_p is None or 0 <= self.min_p < 1, f"{where}.min_p", "must be in [0, 1)")
        _check(isinstance(self.extra, dict), f"{where}.extra", "must be a mapping")


@dataclass
class ModelConfig:
    """Where one role's model lives and how to prompt it."""

    role: str = _help("teacher or student.", default="teacher")
    backend: str = _help(f"One of {BACKENDS}.", default="openai_http")
    model: str | None = _help(
        "Server model name (openai_http; default: the first of /v1/models), or a local "
        "HF directory, GGUF file or hub id (local), or a fake script name (fake).",
        default=None,
    )
    base_urls: list[str] = _help(
        "OpenAI-compatible base URLs (…/v1); several = replicas, one chosen per problem.",
        default_factory=list,
    )
    template: str = _help(
        "Prompt template: auto, chat, chat-think, plain-think, qwen3, deepseek-r1, gpt-oss.",
        default="auto",
    )
    tokenizer: str | None = _help(
        "HF tokenizer (dir or hub id) for chat templates and token counts over HTTP.",
        default=None,
    )
    api_key: str | None = _help("Bearer token for the server (or env OPENAI_API_KEY).", default=None)
    concurrency: int = _help("Most requests of this role in flight at once.", default=64)
    timeout: float = _help("Seconds to wait for a server byte before giving up.", default=300.0)
    stream: bool = _help("Use SSE streaming (needed by `stream` mode).", default=True)
    device: str = _help("local backend: auto, cpu, cuda, mps.", default="auto")
    sampling: SamplingConfig = _help("Sampling settings.", default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = SamplingConfig(**self.sampling)
        where = self.role
        _check_types(self, where)
        _check(self.role in ("teacher", "student"), f"{where}.role", "must be teacher or student")
        _check(self.backend in BACKENDS, f"{where}.backend", f"must be one of {BACKENDS}")
        _check(self.concurrency >= 1, f"{where}.concurrency", "must be >= 1")
        _check(self.timeout > 0, f"{where}.timeout", "must be > 0")
        if self.backend == "openai_http":  # an empty list is refused when the backend is made
            for url in self.base_urls:
                _check(
                    url.startswith(("http://", "https://")), f"{where}.base_urls", f"bad URL {url!r}"
                )
        if self.backend == "local":
            _check(bool(self.model), f"{where}.model", "needs a path or hub id")
        self.sampling.validate(f"{where}.sampling")


@dataclass
class SynthesisConfig:
    """How trajectories are written."""

    strategy: str = _help(f"One of {STRATEGIES}.", default="cooperative")
    mode: str = _help("stream: one request per turn, closed at the cut; step: k tokens per request.",
                      default="stream")
    step_tokens_teacher: int = _help("k for the teacher in step mode (paper: 20).", default=20)
    step_tokens_student: int = _help("k for the student in step mode (paper: 20).", default=20)
    turn_tokens: int = _help("Most tokens asked for in one stream-mode request.", default=1024)
    max_thinking_tokens: int = _help("Token budget of the thinking, both roles together.",
                                     default=8192)
    max_answer_tokens: int = _help("Most tokens of the final answer.", default=2048)
    max_turns: int = _help("Most turns (role changes + continuations) per trajectory.", default=1000)
    answer_role: str = _help("Which role writes the final answer (paper: student).",
                             default="student")
    teacher_predictor: str = _help("Boundary predictor of the teacher: lexicon or a model dir.",
                                   default="lexicon")
    student_predictor: str = _help("Boundary predictor of the student: lexicon or a model dir.",
                                   default="lexicon")
    predict_every: int | None = _help(
        "Call the predictor once this many tokens have arrived since its last call (1: at every "
        "word). Higher means fewer predictor forwards and up to that many tokens decoded past a "
        "cut (see BENCHMARKS.md). None: the predictor's own default (lexicon 1, model 16).",
        default=None)
    predictor_device: str = _help("Device of model predictors: auto, cpu, cuda, mps.",
                                  default="auto")
    concurrency: int = _help("Problems in flight at once.", default=32)
    scheduler: str = _help(
        "async: every problem goes at its own pace; lockstep: the authors' prototype (rounds of "
        "one step-mode request per problem, each round waiting for all), kept for comparison.",
        default="async")
    retries: int = _help("Retries of a failed or empty request before the problem fails.",
                         default=3)
    backoff: float = _help("First retry delay in seconds (doubles, with jitter).", default=1.0)
    server_down_after: float = _help(
        "Seconds a server may refuse every request (restart, outage) before the run stops; "
        "0 waits forever.", default=300.0)
    grace: float = _help("Seconds in-flight problems get to finish after SIGINT/SIGTERM.",
                         default=30.0)
    repetition_window: int = _help("Words checked by the loop detector (0: off).", default=400)

    def __post_init__(self) -> None:
        w = "synthesis"
        _check_types(self, w)
        _check(self.strategy in STRATEGIES, f"{w}.strategy", f"must be one of {STRATEGIES}")
        _check(self.mode in MODES, f"{w}.mode", f"must be one of {MODES}")
        _check(self.scheduler in SCHEDULERS, f"{w}.scheduler", f"must be one of {SCHEDULERS}")
        _check(self.scheduler != "lockstep" or self.mode == "step", f"{w}.scheduler",
               "lockstep needs mode step (it waits for whole k-token requests)")
        _check(self.answer_role in ("teacher", "student"), f"{w}.answer_role",
               "must be teacher or student")
        for name in ("step_tokens_teacher", "step_tokens_student", "turn_tokens",
                     "max_thinking_tokens", "max_answer_tokens", "max_turns", "concurrency"):
            _check(getattr(self, name) >= 1, f"{w}.{name}", "must be >= 1")
        _check(self.predict_every is None or self.predict_every >= 1, f"{w}.predict_every",
               "must be >= 1")
        _check(self.retries >= 0, f"{w}.retries", "must be >= 0")
        _check(self.backoff >= 0, f"{w}.backoff", "must be >= 0")
        _check(self.server_down_after >= 0, f"{w}.server_down_after", "must be >= 0")
        _check(self.grace >= 0, f"{w}.grace", "must be >= 0")
        _check(self.repetition_window >= 0, f"{w}.repetition_window", "must be >= 0")

    def step_tokens(self, role: str) -> int:
        """k of `role` in step mode."""
        return self.step_tokens_teacher if role == "teacher" else self.step_tokens_student


@dataclass
class RunConfig:
    """One `tessy synthesize` run: inputs, output, the two models, the synthesis settings."""

    output: str = _help("Output JSONL; errors go to <output>.errors.jsonl.", default="tessy.jsonl")
    inputs: list[str] = _help("Problem files or dataset dirs/ids.", default_factory=list)
    prompt_template: str | None = _help("Jinja template over a record's fields.", default=None)
    limit: int | None = _help("Use only the first N problems.", default=None)
    chat_key: str = _help("Name of the chat field in records: dialogs or messages.",
                          default="dialogs")
    teacher: ModelConfig = _help("The teacher.", default_factory=ModelConfig)
    student: ModelConfig = _help("The student.",
                                 default_factory=lambda: ModelConfig(role="student"))
    synthesis: SynthesisConfig = _help("Synthesis settings.", default_factory=SynthesisConfig)

    def __post_init__(self) -> None:
        _check(self.chat_key in ("dialogs", "messages"), "chat_key", "must be dialogs or messages")
        _check(self.limit is None or self.limit >= 1, "limit", "must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, saved beside the output."""
        return asdict(self)

    def config_hash(self) -> str:
        """Hash of the settings that shape the data (not paths or concurrency)."""
        d = self.to_dict()
        for key in ("output", "inputs", "limit"):
            d.pop(key)
        for key in ("concurrency", "scheduler", "server_down_after", "grace",
                    "predictor_device"):  # how, not what
            d["synthesis"].pop(key)
        for role in ("teacher", "student"):
            for key in ("base_urls", "api_key", "concurrency", "timeout", "device"):
                d[role].pop(key)
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def load_config_file(path: str) -> dict[str, Any]:
    """Read a TOML or JSON config file into nested dicts."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            if path.endswith(".json"):
                return json.load(fh)
            return tomllib.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def run_config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    """Build a RunConfig from nested dicts, naming unknown fields."""
    known = {f.name for f in fields(RunConfig)}
    unknown = set(data) - known
    _check(not unknown, where, f"unknown field(s) {sorted(unknown)}")
    kwargs = dict(data)
    try:
        for role in ("teacher", "student"):
            if role in kwargs:
                kwargs[role] = ModelConfig(**({"role": role} | kwargs[role]))
        if "synthesis" in kwargs:
            kwargs["synthesis"] = SynthesisConfig(**kwargs["synthesis"])
        return RunConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
