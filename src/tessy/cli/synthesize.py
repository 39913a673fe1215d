"""`tessy synthesize`: problems in, cooperative (or baseline) SFT records out."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import asdict
from typing import Any

import click

from tessy.config import RunConfig, load_config_file, run_config_from_dict
from tessy.errors import ConfigError, ServerUnavailable

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # the shell's convention, 128 + signal number

# Settings of the embedded default: short traces, so a laptop CPU finishes in a few minutes.
DEMO_SYNTHESIS = {"max_thinking_tokens": 160, "max_answer_tokens": 48, "concurrency": 2}


def _model_overrides(role: str, specs: tuple[str, ...], opts: dict[str, Any]) -> dict[str, Any]:
    """ModelConfig fields for one role from its CLI options."""
    out: dict[str, Any] = {}
    if specs:
        values = [v for s in specs for v in s.split(",") if v]
        if all(v.startswith(("http://", "https://")) for v in values):
            out |= {"backend": "openai_http", "base_urls": values}
        elif values == ["fake"]:
            out |= {"backend": "fake", "template": "qwen3"}
        elif len(values) == 1:
            out |= {"backend": "local", "model": values[0]}
        else:
            raise ConfigError(f"--{role}: give URLs (replicas), one local model, or 'fake'")
    for key in ("model", "template", "tokenizer", "concurrency", "timeout"):
        if opts.get(f"{role}_{key}") is not None:
            out[key] = opts[f"{role}_{key}"]
    sampling = {k: opts[k] for k in ("temperature", "top_p", "top_k", "min_p", "seed")
                if opts.get(k) is not None}
    if sampling:
        out["sampling"] = sampling
    if opts.get("no_stream"):
        out["stream"] = False
    api_key = opts.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if api_key and out.get("backend") == "openai_http":
        out["api_key"] = api_key
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def build_config(inputs: tuple[str, ...], opts: dict[str, Any]) -> tuple[RunConfig, bool]:
    """The run config from a config file and CLI options; True when it is the embedded default."""
    data: dict[str, Any] = load_config_file(opts["config"]) if opts.get("config") else {}
    syn = {k: opts[k] for k in ("strategy", "mode", "turn_tokens", "max_thinking_tokens",
                                "max_answer_tokens", "max_turns", "answer_role", "concurrency",
                                "retries", "server_down_after", "grace", "teacher_predictor",
                                "student_predictor", "predict_every", "predictor_device",
                                "scheduler")
           if opts.get(k) is not None}
    if opts.get("step_tokens") is not None:
        syn |= _step_tokens(opts["step_tokens"])
    teacher = _model_overrides("teacher", opts["teacher"], opts)
    student = _model_overrides("student", opts["student"], opts)
    if opts.get("dry_run"):
        for mc in (teacher, student):
            mc |= {"backend": "fake", "template": mc.get("template", "qwen3")}
    has_models = any(k in data for k in ("teacher", "student")) or opts["teacher"] or opts["student"]
    embedded = not has_models and not opts.get("dry_run")
    if embedded:
        from tessy.embedded import demo_models

        t, s = demo_models()
        data = _merge({"teacher": asdict(t), "student": asdict(s)}, data)
        syn = DEMO_SYNTHESIS | syn
    elif not opts.get("dry_run") and bool(opts["teacher"]) != bool(opts["student"]) and not data:
        raise ConfigError("give both --teacher and --student (or neither, for the embedded default)")
    data = _merge(data, {"teacher": teacher, "student": student, "synthesis": syn})
    if inputs:
        data["inputs"] = list(inputs)
    for key in ("output", "limit", "prompt_template"):
        if opts.get(key) is not None:
            data[key] = opts[key]
    if opts.get("messages"):
        data["chat_key"] = "messages"
    config = run_config_from_dict(data)
    if not config.inputs:
        from tessy.embedded import DEMO_PROBLEMS

        config.inputs = [str(DEMO_PROBLEMS)]
    return config, embedded


def _step_tokens(value: str) -> dict[str, int]:
    """`--step-tokens K` or `STUDENT/TEACHER`."""
    parts = value.split("/")
    try:
        ks = [int(p) for p in parts]
    except ValueError:
        ks = []
    if len(ks) not in (1, 2):
        raise ConfigError(f"--step-tokens: {value!r} is not K or STUDENT/TEACHER (e.g. 20 or 5/10)")
    return {"step_tokens_student": ks[0], "step_tokens_teacher": ks[-1]}


def _template_text(value: str | None) -> str | None:
    if value and value.startswith("@"):
        with open(value[1:], encoding="utf-8") as fh:
            return fh.read()
    return value


def _opt(*decls: str, **attrs: Any):
    """click.option that remembers its names, so commands can share the list minus some."""
    decorator = click.option(*decls, **attrs)
    decorator.names = decls
    return decorator


RUN_OPTIONS = [
    _opt("-o", "--output", help="Output JSONL (default tessy.jsonl); resumed if it exists."),
    _opt("--teacher", multiple=True, help="Server URL(s) (…/v1), a local model dir/GGUF/hub "
                  "id, or 'fake'. Repeat or comma-separate URLs for replicas."),
    _opt("--student", multiple=True, help="Same as --teacher, for the student."),
    _opt("--teacher-model", help="Model name on the teacher server (default: first listed)."),
    _opt("--student-model", help="Model name on the student server."),
    _opt("--teacher-template", help="Prompt template of the teacher (default auto)."),
    _opt("--student-template", help="Prompt template of the student (default auto)."),
    _opt("--teacher-tokenizer", help="HF tokenizer of the teacher (chat template, counts)."),
    _opt("--student-tokenizer", help="HF tokenizer of the student."),
    _opt("--teacher-concurrency", type=int, help="Teacher requests in flight (default 64)."),
    _opt("--student-concurrency", type=int, help="Student requests in flight (default 64)."),
    _opt("--teacher-timeout", type=float, help="Teacher read timeout, seconds."),
    _opt("--student-timeout", type=float, help="Student read timeout, seconds."),
    _opt("--strategy", type=click.Choice(["cooperative", "teacher-only", "student-only"]),
                  help="cooperative (TESSY, default) or a single-role baseline."),
    _opt("--mode", type=click.Choice(["stream", "step"]), help="stream (default) or step."),
    _opt("--step-tokens", help="k tokens per request in step mode: K for both roles (default "
         "20) or STUDENT/TEACHER (the authors' code: 5/10)."),
    _opt("--scheduler", type=click.Choice(["async", "lockstep"]),
         help="async (default) or lockstep: the authors' prototype's rounds, for comparison."),
    _opt("--turn-tokens", type=int, help="Most tokens per stream-mode request (1024)."),
    _opt("--max-thinking-tokens", type=int, help="Thinking budget per trajectory (8192)."),
    _opt("--max-answer-tokens", type=int, help="Answer budget (2048)."),
    _opt("--max-turns", type=int, help="Most turns per trajectory (1000)."),
    _opt("--answer-role", type=click.Choice(["student", "teacher"]), help="Who answers."),
    _opt("--concurrency", type=int, help="Problems in flight (default 32)."),
    _opt("--retries", type=int, help="Retries of a failed request (default 3)."),
    _opt("--server-down-after", type=float,
                  help="Stop the run when a server refuses everything this long (300 s; 0: wait)."),
    _opt("--grace", type=float, help="Seconds in-flight problems get after SIGINT/SIGTERM (30)."),
    _opt("--teacher-predictor", help="Teacher's boundary predictor: lexicon (default) or a "
                  "token-classifier dir / hub id (e.g. CoopReason/Boundary_Predictor_Teacher_Code)."),
    _opt("--student-predictor", help="Student's boundary predictor, same choices."),
    _opt("--predict-every", type=int, help="Tokens between predictor calls "
         "(default: lexicon 1, model 16)."),
    _opt("--predictor-device", help="Device of model predictors (default auto)."),
    _opt("--temperature", type=float, help="Sampling temperature (both roles)."),
    _opt("--top-p", type=float, help="Nucleus mass (both roles)."),
    _opt("--top-k", type=int, help="Top-k (both roles)."),
    _opt("--min-p", type=float, help="Min-p (both roles)."),
    _opt("--seed", type=int, help="Base seed (both roles)."),
    _opt("--no-stream", is_flag=True, help="Non-streaming requests (step mode)."),
    _opt("--api-key", help="Bearer token for the servers (or env OPENAI_API_KEY)."),
    _opt("--prompt-template", help="Jinja template over a record's fields, or @file."),
    _opt("--limit", type=int, help="Only the first N problems."),
    _opt("--messages", is_flag=True, help="Write `messages` instead of `dialogs`."),
    _opt("--config", type=click.Path(exists=True, dir_okay=False), help="TOML/JSON config."),
    _opt("--dry-run", is_flag=True, help="Use scripted fake models: checks inputs and plumbing."),
    _opt("-q", "--quiet", is_flag=True, help="No progress bar."),
]


def run_options(skip: tuple[str, ...] = ()):
    """Apply RUN_OPTIONS to a command, leaving out the options named in `skip`."""
    def apply(command):
        for decorator in reversed(RUN_OPTIONS):
            if not set(decorator.names) & set(skip):
                command = decorator(command)
        return command
    return apply


@click.command("synthesize")
@click.argument("inputs", nargs=-1)
@run_options()
def synthesize_command(inputs: tuple[str, ...], **opts: Any) -> None:
    """Write SFT records for the problems in INPUTS (default: the shipped demo problems).

    With no --teacher/--student this runs the embedded default: gemma-3-270m (teacher) and
    SmolLM2-135M-Instruct (student) in-process on the CPU.
    """
    run_synthesis(inputs, opts)


def run_synthesis(inputs: tuple[str, ...], opts: dict[str, Any]):
    """Build the config, run it with signal handling, print the summary; returns the config."""
    from tessy.io.problems import ProblemReader
    from tessy.synthesis.scheduler import StopRequest, build_roles, synthesize

    opts["prompt_template"] = _template_text(opts.get("prompt_template"))
    config, embedded = build_config(inputs, opts)
    reader = ProblemReader(config.inputs, config.prompt_template)
    problems = list(reader)
    if config.limit:
        problems = problems[: config.limit]
    for line in reader.skipped:
        click.secho(f"skipped {line}", fg="yellow", err=True)
    if embedded:
        click.echo("embedded default: gemma-3-270m (teacher) + SmolLM2-135M-Instruct (student), "
                   "in-process on the CPU", err=True)

    stop = StopRequest()

    async def run():
        roles = await build_roles(config)  # a signal while loading just ends the process
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig.name)
        try:
            return await synthesize(config, problems, roles, progress=not opts["quiet"], stop=stop)
        finally:
            for rt in roles.values():
                await rt.backend.close()

    summary = asyncio.run(run())
    resumed = f", {summary.resumed} continued from checkpoints" if summary.resumed else ""
    click.echo(
        f"{summary.written} written, {summary.failed} failed, {summary.already_done} already done,"
        f" {len(reader.skipped)} bad rows{resumed} -> {config.output} "
        f"(teacher share {summary.teacher_share():.0%}, {summary.seconds:.1f}s)"
    )
    for line in summary.errors[:5]:
        click.secho(f"failed {line}", fg="red", err=True)
    if summary.stopped in SIGNAL_EXIT:
        click.secho(f"stopped by {summary.stopped}: {summary.in_flight} in flight kept as "
                    "checkpoints; rerun the same command to continue", fg="yellow", err=True)
        raise click.exceptions.Exit(SIGNAL_EXIT[summary.stopped])
    if summary.stopped:
        raise ServerUnavailable(summary.stopped)
    return config
