"""Configuration dataclasses, one per concern; the single source of truth for every setting.

Each field carries its help text (and, in its metadata, how it appears on the command line);
`tessy.cli.options` generates the CLI options from these fields, so a new setting is one field.
Validation lives in `__post_init__` and raises `ConfigError` naming the field and the rule.

    RunConfig             one `tessy synthesize` run: inputs, output, the two roles, synthesis
    ├── RoleConfig x 2    everything about one role: server or model, template, predictor, k
    │   └── SamplingConfig
    └── SynthesisConfig   how trajectories are written and scheduled
    PredictorTrainConfig  `tessy predictor train`
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass
from typing import Any

from tessy.errors import ConfigError
from tessy.replicas import ROUTES
from tessy.templates import NAMES as TEMPLATES

MODES = ("stream", "step")
SCHEDULERS = ("async", "lockstep")
PREDICTOR_MODES = ("auto", "incremental", "window")
STRATEGIES = ("cooperative", "teacher-only", "student-only")


def setting(help: str, *, cli: str | None = "", hashed: bool = True, choices: tuple[str, ...] = (),
            flags: tuple[str, ...] = (), added: bool = False, **kwargs: Any) -> Any:
    """A config field with its help text and CLI metadata.

    `cli`: "" for the default (an option named after the field; per role for RoleConfig),
    "shared" (one option sets the field of both roles), None (config files only).
    `hashed=False`: the field changes how a run goes, not what it writes, so it is left out of
    the config hash (a rerun with another value resumes the same data).
    `flags`: option names to use instead of the generated one.
    `added`: a field added after runs were made; at its default it is left out of the hash, so
    those runs keep their hash and resume.
    """
    meta = {"help": help, "cli": cli, "hashed": hashed, "choices": choices, "flags": flags,
            "added": added}
    return field(metadata=meta, **kwargs)


def _check(ok: bool, where: str, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {rule}")


_KINDS: dict[str, Any] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check_fields(obj: Any, where: str) -> None:
    """Reject scalars of the wrong type (they come from CLI, TOML or JSON) and bad choices."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        parts = [p.strip() for p in str(f.type).split("|")]
        if value is None and "None" in parts:
            continue
        kind = _KINDS.get(parts[0])
        if kind is not None and (not isinstance(value, kind)
                                 or (isinstance(value, bool) and parts[0] != "bool")):
            raise ConfigError(f"{where}.{f.name}: expected {parts[0]}, got {value!r}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{where}.{f.name}: must be one of {', '.join(choices)}, not {value!r}")


def _at_least(obj: Any, where: str, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(value is None or value >= minimum, f"{where}.{name}", f"must be >= {minimum}")


@dataclass
class SamplingConfig:
    """Sampling settings sent with every request of one role."""

    temperature: float = setting("Softmax temperature; 0 means greedy.", cli="shared", default=0.6)
    top_p: float = setting("Nucleus sampling mass.", cli="shared", default=0.95)
    top_k: int | None = setting("Keep only the k most likely tokens (None: off).", cli="shared",
                                default=None)
    min_p: float | None = setting("Drop tokens below min_p x p(max) (None: off).", cli="shared",
                                  default=None)
    seed: int | None = setting("Base seed; each problem derives its own from it.", cli="shared",
                               default=None)
    extra: dict[str, Any] = setting(
        "Extra fields passed through in the request body (e.g. repetition_penalty).", cli=None,
        default_factory=dict)

    def validate(self, where: str) -> None:
        """Check types and ranges; `where` names the owner in messages."""
        _check_fields(self, where)
        _check(self.temperature >= 0, f"{where}.temperature", "must be >= 0")
        _check(0 < self.top_p <= 1, f"{where}.top_p", "must be in (0, 1]")
        _check(self.top_k is None or self.top_k > 0, f"{where}.top_k", "must be > 0")
        _check(self.min_p is None or 0 <= self.min_p < 1, f"{where}.min_p", "must be in [0, 1)")
        _check(isinstance(self.extra, dict), f"{where}.extra", "must be a mapping")


@dataclass
class RoleConfig:
    """Everything about one role: where its model lives, how to prompt it, its predictor."""

    role: str = setting("teacher or student.", cli=None, choices=("teacher", "student"),
                        default="teacher")
    backend: str = setting("Which backend runs the model: a name of `backends.registry` (set by "
                           "--teacher/--student).", cli=None, default="openai_http")
    model: str | None = setting(
        "Model name on the server (default: the first of /v1/models); for the local backend a "
        "HF directory, GGUF file or hub id.", default=None)
    model_name: str | None = setting(
        "The model's name in records and cards (default: its hub id, GGUF name and "
        "quantisation, or directory name; never a path of this machine).", hashed=False, default=None)
    base_urls: list[str] = setting(
        "OpenAI-compatible base URLs (…/v1); several = replicas, one chosen per problem.",
        cli=None, hashed=False, default_factory=list)
    template: str = setting("Prompt template.", choices=TEMPLATES, default="auto")
    tokenizer: str | None = setting(
        "HF tokenizer (dir or hub id) for chat templates and token counts over HTTP (default: "
        "the server's own chat template where it exposes one, e.g. llama.cpp).", default=None)
    api_key: str | None = setting(
        "Bearer token for this role's servers (else --api-key, else env TESSY_<ROLE>_API_KEY, "
        "else OPENAI_API_KEY); never written to a file.", hashed=False, default=None)
    basic_auth: str | None = setting(
        "user:password for Basic auth, taken from a URL's userinfo (http://user:pw@host/v1) and "
        "cut off the URL; never written to a file.", cli=None, hashed=False, default=None)
    concurrency: int = setting("Most requests of this role in flight at once.", hashed=False,
                               default=64)
    route: str = setting("How requests pick one of several server replicas: `affinity` "
                         "(rendezvous hash of the problem: prefix caches stay warm) or "
                         "`least-loaded` (fewest in flight, staying put while close).",
                         cli="shared", hashed=False, choices=ROUTES, default="affinity")
    timeout: float = setting("Seconds to wait for a server byte before giving up.", hashed=False,
                             default=300.0)
    stream: bool = setting("SSE streaming (needed by stream mode; off: whole step-mode chunks).",
                           cli="shared", default=True)
    device: str = setting("Device of a local model: auto, cpu, cuda, mps.", hashed=False,
                          default="auto")
    threads: int = setting("CPU threads of the role's managed llama-server (a .gguf model); "
                           "0: every core, or, when both roles run one here, every core for "
                           "the larger model and a share by size for the smaller.",
                           hashed=False, default=0)
    context: int = setting("Tokens of context per request slot of the role's managed "
                           "llama-server (its slots: the role's concurrency).", hashed=False,
                           default=4096)
    predictor: str = setting(
        "Boundary predictor: lexicon, or a token-classifier dir / hub id (e.g. "
        "CoopReason/Boundary_Predictor_{Role}_Code).", default="lexicon")
    predictor_device: str = setting("Device of a model predictor: auto, cpu, cuda, mps.",
                                    cli="shared", hashed=False, default="auto")
    predictor_threads: int = setting(
        "CPU threads of a model predictor on the CPU (torch's, for the whole process); 0: one "
        "while a role's managed llama-server shares this machine's cores (torch's spinning "
        "threads halved such a run's speed: BENCHMARKS.md), else torch's default.",
        cli="shared", hashed=False, default=0)
    predictor_mode: str = setting(
        "How a model predictor reads the text: window (the last 200 tokens again at every "
        "call, the reference), incremental (a KV cache per trajectory: ~1 forward per token "
        "instead of ~12) or auto: incremental for a predictor trained for it (`predictor "
        "train --label-shift current --session-share`), window for others, e.g. the published "
        "checkpoints (BENCHMARKS.md).",
        cli="shared", hashed=False, choices=PREDICTOR_MODES, default="auto")
    predictor_verify: float = setting(
        "Incremental mode: read a call again from the window when its cut rests on a word "
        "scored within this many logits of the boundary (0: never; BENCHMARKS.md).",
        cli="shared", hashed=False, default=0.0)
    step_tokens: int = setting("k tokens per request in step mode (paper: 20).", default=20)
    sampling: SamplingConfig = setting("Sampling settings.", cli=None,
                                       default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = SamplingConfig(**self.sampling)
        if self.backend == "fake" and self.template == "auto":
            self.template = "qwen3"  # the scripted model writes Qwen3's format (`--teacher fake`)
        where = self.role
        _check_fields(self, where)
        _at_least(self, where, 1, "concurrency", "step_tokens")
        _at_least(self, where, 0, "predictor_verify")
        _check(self.timeout > 0, f"{where}.timeout", "must be > 0")
        _check(bool(self.predictor), f"{where}.predictor", "must name lexicon or a model")
        if self.backend == "openai_http":  # an empty list is refused when the backend is made
            from tessy.secrets import split_userinfo

            urls = []
            for url in self.base_urls:
                clean, userinfo = split_userinfo(url)
                _check(url.startswith(("http://", "https://")), f"{where}.base_urls",
                       f"bad URL {clean!r}")
                if userinfo:
                    _check(self.basic_auth in (None, userinfo), f"{where}.base_urls",
                           "replicas with different user:password are not supported")
                    self.basic_auth = userinfo
                urls.append(clean)
            self.base_urls = urls
        if self.backend == "local":
            _check(bool(self.model), f"{where}.model", "needs a path or hub id")
        if self.backend == "llama_server":
            _check(bool(self.model), f"{where}.model", "needs a GGUF file")
        _at_least(self, where, 0, "threads")
        _at_least(self, where, 0, "predictor_threads")
        _at_least(self, where, 256, "context")
        self.sampling.validate(f"{where}.sampling")


@dataclass
class SynthesisConfig:
    """How trajectories are written and scheduled."""

    strategy: str = setting("cooperative (TESSY) or a single-role baseline.", choices=STRATEGIES,
                            default="cooperative")
    mode: str = setting("stream: one request per turn, closed at the cut; step: k tokens per "
                        "request.", choices=MODES, default="stream")
    turn_tokens: int = setting("Most tokens asked for in one stream-mode request.", default=1024)
    hold_teacher: bool = setting(
        "Stream mode: when the student kept nothing on its last turn, keep the teacher's request "
        "open past its next cut while the student tries; if the student keeps nothing again, "
        "the teacher reads on where it was cut (no new request, and what it decoded meanwhile "
        "is kept), else the request is closed.", added=True, default=True)
    max_thinking_tokens: int = setting("Token budget of the thinking, both roles together.",
                                       default=8192)
    max_answer_tokens: int = setting("Most tokens of the final answer.", default=2048)
    max_turns: int = setting("Most turns (role changes + continuations) per trajectory.",
                             default=1000)
    answer_from: str = setting(
        "Where the final answer comes from: `model` (the answer role writes it after the "
        "thinking) or `thinking`: for instruct models without a thinking mode, which often "
        "answer inside it, the answer is read from the thinking's end (its last code block, "
        "else its last `Answer:` line, else its last line) when the thinking ended without "
        "`</think>`; when the model closed it, the answer role writes the answer.",
        choices=("model", "thinking"), added=True, default="model")
    answer_role: str = setting("Which role writes the final answer (paper: student).",
                               choices=("student", "teacher"), default="student")
    predict_every: int | None = setting(
        "Call the predictor once this many tokens have arrived since its last call (1: at every "
        "word); higher means fewer predictor forwards and up to that many tokens decoded past a "
        "cut. Default: the predictor's own (lexicon 1, model 16, incremental model 4).",
        default=None)
    concurrency: int = setting("Problems in flight at once.", hashed=False, default=32)
    scheduler: str = setting(
        "Pacing. async: every problem goes at its own pace; lockstep: the authors' prototype "
        "(rounds of one step-mode request per problem, each round waiting for all), kept for "
        "comparison.", choices=SCHEDULERS, hashed=False, default="async")
    retries: int = setting("Retries of a failed request before the problem fails.", default=3)
    empty_retries: int | None = setting(
        "Tries again of a thinking the model ended at once, empty, before the problem fails. "
        "Default: as many as --retries.", added=True, default=None)
    backoff: float = setting("First retry delay in seconds (doubles, with jitter).", hashed=False,
                             default=1.0)
    server_down_after: float = setting(
        "Seconds a server may refuse every request (restart, outage) before the run stops; "
        "0 waits forever.", hashed=False, default=300.0)
    grace: float = setting("Seconds in-flight problems get to finish after SIGINT/SIGTERM.",
                           hashed=False, default=30.0)
    repetition_window: int = setting("Words checked by the loop detector (0: off).", default=400)

    def __post_init__(self) -> None:
        w = "synthesis"
        _check_fields(self, w)
        _check(self.scheduler != "lockstep" or self.mode == "step", f"{w}.scheduler",
               "lockstep needs mode step (it waits for whole k-token requests)")
        _at_least(self, w, 1, "turn_tokens", "max_thinking_tokens", "max_answer_tokens",
                  "max_turns", "concurrency", "predict_every")
        _at_least(self, w, 0, "retries", "empty_retries", "backoff", "server_down_after",
                  "grace", "repetition_window")


@dataclass
class RunConfig:
    """One `tessy synthesize` run: inputs, output, the two roles, the synthesis settings."""

    output: str = setting("Output JSONL (resumed if it exists); errors go to OUTPUT.errors.jsonl.",
                          flags=("-o", "--output"), hashed=False, default="tessy.jsonl")
    inputs: list[str] = setting("Problem files or dataset dirs/ids.", cli=None, hashed=False,
                                default_factory=list)
    prompt_template: str | None = setting(
        "Jinja template over a record's fields (or @file); rendered in a sandbox.", default=None)
    limit: int | None = setting("Use only the first N problems.", hashed=False, default=None)
    samples: int = setting("Independent samples per problem, written as ID#0 ... ID#N-1 (each "
                           "resumed exactly once, like a problem); for rejection sampling.",
                           hashed=False, default=1)
    shard: str | None = setting(
        "Run only shard K of N (K/N): the problems whose id hashes to it, written to "
        "OUTPUT.shards/K-of-N.jsonl. The same command without it (or `tessy merge`) merges.",
        hashed=False, default=None)
    workers: int = setting("Client processes on this machine, one shard each, merged at the end.",
                           hashed=False, default=1)
    retry_failed: bool = setting(
        "Retry problems whose recorded failure would recur under the same config (empty thinking "
        "on every retry, a request the server refused); a rerun leaves them otherwise. Failures "
        "of the servers (timeouts, 5xx) are always retried.", hashed=False, default=False)
    chat_key: str = setting("Name of the chat field in records.", choices=("dialogs", "messages"),
                            default="dialogs")
    teacher: RoleConfig = setting("The teacher.", default_factory=RoleConfig)
    student: RoleConfig = setting("The student.",
                                  default_factory=lambda: RoleConfig(role="student"))
    synthesis: SynthesisConfig = setting("Synthesis settings.", default_factory=SynthesisConfig)

    def __post_init__(self) -> None:
        _check(self.chat_key in ("dialogs", "messages"), "chat_key", "must be dialogs or messages")
        _check(self.limit is None or self.limit >= 1, "limit", "must be >= 1")
        _check(self.samples >= 1, "samples", "must be >= 1")
        _check(self.workers >= 1, "workers", "must be >= 1")
        _check(not (self.shard and self.workers > 1), "workers", "cannot be combined with shard")
        if self.shard:
            from tessy.io.shards import Shard

            Shard.parse(self.shard)

    def role(self, name: str) -> RoleConfig:
        """The config of role `name`."""
        return self.teacher if name == "teacher" else self.student

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, saved beside the output: without credentials (see
        `tessy.secrets`; `credentials()` has them)."""
        data = asdict(self)
        for role in ("teacher", "student"):
            data[role].pop("api_key", None)
            data[role].pop("basic_auth", None)
        return data

    def credentials(self) -> dict[str, str]:
        """Each role's credentials as the environment variables that hand them to a worker."""
        from tessy.secrets import role_env

        env: dict[str, str] = {}
        for role in ("teacher", "student"):
            env |= role_env(role, self.role(role).api_key, self.role(role).basic_auth)
        return env

    def config_hash(self) -> str:
        """Hash of the settings that shape the data (the fields not marked `hashed=False`)."""
        blob = json.dumps(_what(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _what(obj: Any) -> dict[str, Any]:
    """The fields of a config (recursively) that shape the data it writes."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not f.metadata.get("hashed", True) or (f.metadata.get("added") and value == f.default):
            continue
        out[f.name] = _what(value) if is_dataclass(value) else value
    return out


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


WRITTEN_ONLY = ("config_hash",)  # what `OUT.config.json` adds to the fields: read, not used


def _section(f: Field) -> type | None:
    """The config dataclass a field holds (a section of the file), or None."""
    if f.default_factory is MISSING:
        return None
    value = f.default_factory()
    return type(value) if is_dataclass(value) else None


def check_keys(data: dict[str, Any], where: str, cls: type | None = None, prefix: str = "") -> None:
    """Refuse a key no config field has, naming it, `where` and the nearest valid key."""
    cls = cls or RunConfig
    known = {f.name: f for f in fields(cls)}
    for key, value in data.items():
        if not prefix and key in WRITTEN_ONLY:
            continue
        if key not in known:
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {prefix}{near[0]}?" if near else f"valid: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key {prefix}{key}; {hint}")
        section = _section(known[key])
        if section is not None and isinstance(value, dict):
            check_keys(value, where, section, f"{prefix}{key}.")


def run_config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    """Build a RunConfig from nested dicts (what `OUT.config.json` holds, too), naming
    unknown keys."""
    kwargs = {k: v for k, v in data.items() if k not in WRITTEN_ONLY}
    check_keys(kwargs, where)
    try:
        for role in ("teacher", "student"):
            if role in kwargs:
                kwargs[role] = RoleConfig(**({"role": role} | kwargs[role]))
        if "synthesis" in kwargs:
            kwargs["synthesis"] = SynthesisConfig(**kwargs["synthesis"])
        return RunConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


# The authors' predictor recipe (CoopReason/TESSY, Boundary_Predictor/train_predictor.py):
# Qwen3-0.6B-Base, AdamW at a constant 1e-5 (torch's defaults: weight decay 0.01, no warm-up),
# batch 32, 3 epochs, 5% validation split, seed 42, at most 10,000 sampled segments, sequences
# up to 512 tokens (the tokenizer's right truncation: a segment's first 512), labels shifted to
# the next token.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "authors": {"backbone": "Qwen/Qwen3-0.6B-Base", "learning_rate": 1e-5, "scheduler": "constant",
                "warmup": 0.0, "weight_decay": 0.01, "batch_size": 32, "epochs": 3.0,
                "eval_fraction": 0.05, "seed": 42, "max_segments": 10_000, "window": 512,
                "truncation": "right", "label_shift": "next"},
}


@dataclass
class PredictorTrainConfig:
    """Settings of `tessy predictor train`."""

    output: str = setting("Directory of the trained predictor.", flags=("-o", "--output"),
                          default="predictor")
    backbone: str = setting("HF dir, hub id (paper: Qwen/Qwen3-0.6B-Base) or GGUF; smollm2 = "
                            "the embedded student's weights.", default="smollm2")
    role: str = setting("Whose traces the labels come from (for the card).",
                        choices=("student", "teacher"), default="student")
    label_shift: str = setting("next: label i is about token i+1 (the published format); "
                               "current: about token i.", choices=("next", "current"),
                               default="next")
    window: int = setting("Tokens per training example (see --truncation).", default=200)
    truncation: str = setting(
        "Which tokens of a segment longer than --window are trained on: left truncation keeps "
        "the last window tokens (what a run-time window reads), right the first (the authors' "
        "training). Not used with --min-window.", choices=("left", "right"), default="left")
    min_window: int | None = setting(
        "Train on contexts of any start: each example is a stretch of its segment, min_window "
        "to window tokens long, ending anywhere, drawn anew each epoch (for predictors read "
        "incrementally or over windows cut mid-text; sample long segments). Default: the last "
        "window tokens of each segment.", default=None)
    session_share: float = setting(
        "With --min-window: this share of the stretches is read as --predictor-mode "
        "incremental reads (up to two windows long, each token attending to the last window "
        "tokens and the stretch's first few), so both modes cut alike (BENCHMARKS.md).",
        default=0.0)
    epochs: float = setting("Passes over the training segments.", default=3.0)
    learning_rate: float = setting("Peak learning rate (linear decay).", flags=("--lr",),
                                   default=5e-5)
    batch_size: int = setting("Segments per optimizer step.", default=16)
    eval_fraction: float = setting("Share of segments held out for the card's evaluation.",
                                   default=0.1)
    seed: int = setting("Seed of the split, the head's initialisation and the shuffling.",
                        default=0)
    scheduler: str = setting("Learning-rate schedule after the warm-up.",
                             choices=("linear", "constant"), default="linear")
    warmup: float = setting("Share of the steps spent warming the learning rate up.",
                            default=0.1)
    weight_decay: float = setting("AdamW weight decay.", default=0.01)
    max_segments: int | None = setting("Train on at most this many segments (a seeded sample).",
                                       default=None)
    device: str = setting("auto, cpu, cuda, mps.", default="auto")

    def __post_init__(self) -> None:
        w = "train"
        _check_fields(self, w)
        _check(0 <= self.eval_fraction < 1, f"{w}.eval_fraction", "must be in [0, 1)")
        _at_least(self, w, 2, "window")
        _check(self.min_window is None or 2 <= self.min_window <= self.window,
               f"{w}.min_window", "must be in [2, window]")
        _check(0 <= self.session_share <= 1, f"{w}.session_share", "must be in [0, 1]")
        _check(not self.session_share or self.min_window is not None, f"{w}.session_share",
               "needs --min-window (stretches of long segments)")
        _at_least(self, w, 1, "batch_size")
        _check(self.epochs > 0, f"{w}.epochs", "must be > 0")
        _check(self.learning_rate > 0, f"{w}.learning_rate", "must be > 0")
        _check(0 <= self.warmup < 1, f"{w}.warmup", "must be in [0, 1)")
        _check(self.max_segments is None or self.max_segments >= 2, f"{w}.max_segments",
               "must be >= 2")


# The paper's SFT recipe (arXiv 2604.14164, Sec. 4): XTuner on Qwen3-8B, global batch 128,
# learning rate 5e-5, 9 epochs. bf16 and the sequence length are tessy's choices for such a run
# (traces of ~15k tokens); the schedule and warm-up are tessy's defaults, not the paper's.
SFT_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"batch_size": 128, "micro_batch": 1, "learning_rate": 5e-5, "epochs": 9.0,
              "max_length": 32768, "dtype": "bf16"},
}


@dataclass
class SFTTrainConfig:
    """Settings of `tessy sft` (small runs by default; `--preset paper` for the paper's)."""

    output: str = setting("Directory of the fine-tuned model (must not exist).",
                          flags=("-o", "--output"), default="sft-model")
    model: str = setting("Student to fine-tune: HF dir, hub id or GGUF; smollm2 = the embedded "
                         "student.", default="smollm2")
    model_name: str | None = setting("The base model's name in the card (default: its hub id, "
                                     "GGUF name and quantisation, or directory name).",
                                     default=None)
    template: str = setting("How the prompt is framed, as in `synthesize --student-template`: "
                            "chat (the model's template, thinking on), chat-think (plus the "
                            "think-in-<think> system instruction), auto (chat-think when the "
                            "template knows no <think>).", choices=("auto", "chat", "chat-think"),
                            default="auto")
    chat_template: str | None = setting("A Jinja chat template file to use instead of the "
                                        "model's own (saved with the model).", default=None)
    epochs: float = setting("Passes over the data.", default=2.0)
    learning_rate: float = setting("Peak learning rate.", flags=("--lr",), default=5e-5)
    batch_size: int = setting("Examples per optimizer step (gradient accumulation fills it).",
                              default=8)
    micro_batch: int = setting("Examples per forward pass on one device.", default=4)
    max_length: int = setting("Tokens per example; longer examples are left out and counted "
                              "(truncating would cut off the answer).", default=1024)
    scheduler: str = setting("Learning-rate schedule after the warm-up.",
                             choices=("cosine", "linear", "constant"), default="cosine")
    warmup: float = setting("Share of the steps spent warming the learning rate up.",
                            default=0.03)
    weight_decay: float = setting("AdamW weight decay.", default=0.0)
    lora: bool = setting("Train a LoRA adapter (peft) instead of every weight; it is merged "
                         "into the saved model.", default=False)
    lora_rank: int = setting("LoRA rank.", default=16)
    lora_alpha: int = setting("LoRA alpha (scale = alpha / rank).", default=32)
    dtype: str = setting("Training precision: bf16 (mixed, GPU), fp32, or auto (bf16 on a "
                         "GPU that has it, else fp32).", choices=("auto", "bf16", "fp32"),
                         default="auto")
    device: str = setting("auto, cpu, cuda, mps.", default="auto")
    save_steps: int = setting("Checkpoint every N optimizer steps (0: every epoch); a killed "
                              "run resumes from the last one.", default=0)
    seed: int = setting("Seed of the shuffling, the eval split and LoRA's initialisation.", default=0)
    eval_fraction: float = setting("Share of the examples held out for an eval loss after every "
                                   "epoch (in the card); 0: none.", default=0.0)
    report_to: str = setting("Trainer loggers, comma-separated: none, tensorboard, wandb, mlflow, "
                             "trackio (each needs its package).", default="none")
    gradient_checkpointing: str = setting(
        "Recompute activations in the backward pass (less memory, ~20-30% slower): on, off, or "
        "auto (on a GPU).", choices=("auto", "on", "off"), default="auto")
    gguf: bool = setting("Also write OUTPUT/model.gguf (f16, by llama.cpp's converter), so a "
                         "managed llama-server serves the student (`--student OUTPUT/model.gguf`).",
                         default=False)
    sft_args: list[str] = setting("Other fields of TRL's SFTConfig as key=value (JSON values, "
                                  "e.g. max_grad_norm=0.5); they win over tessy's.", cli=None,
                                  default_factory=list)

    def __post_init__(self) -> None:
        w = "sft"
        _check_fields(self, w)
        _at_least(self, w, 1, "batch_size", "micro_batch", "lora_rank", "lora_alpha")
        _at_least(self, w, 16, "max_length")
        _at_least(self, w, 0, "save_steps")
        _check(self.epochs > 0, f"{w}.epochs", "must be > 0")
        _check(self.learning_rate > 0, f"{w}.learning_rate", "must be > 0")
        _check(0 <= self.warmup < 1, f"{w}.warmup", "must be in [0, 1)")
        _check(0 <= self.eval_fraction < 1, f"{w}.eval_fraction", "must be in [0, 1)")
        _check(self.batch_size % self.micro_batch == 0 or self.batch_size < self.micro_batch,
               f"{w}.batch_size", f"must be a multiple of micro_batch ({self.micro_batch})")
