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
                                "retries", "server_down_after", "grace")
           if opts.get(k) is not None}
    if opts.get("step_tokens") is not None:
        syn |= {"step_tokens_teacher": opts["step_tokens"], "step_tokens_student": opts["step_tokens"]}
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


def _template_text(value: str | None) -> str | None:
    if value and value.startswith("@"):
        with open(value[1:], encoding="utf-8") as fh:
            return fh.read()
    return value


@click.command("synthesize")
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", help="Output JSONL (default tessy.jsonl); resumed if it exists.")
@click.option("--teacher", multiple=True, help="Server URL(s) (…/v1), a local model dir/GGUF/hub "
              "id, or 'fake'. Repeat or comma-separate URLs for replicas.")
@click.option("--student", multiple=True, help="Same as --teacher, for the student.")
@click.option("--teacher-model", help="Model name on the teacher server (default: first listed).")
@click.option("--student-model", help="Model name on the student server.")
@click.option("--teacher-template", help="Prompt template of the teacher (default auto).")
@click.option("--student-template", help="Prompt template of the student (default auto).")
@click.option("--teacher-tokenizer", help="HF tokenizer of the teacher (chat template, counts).")
@click.option("--student-tokenizer", help="HF tokenizer of the student.")
@click.option("--teacher-concurrency", type=int, help="Teacher requests in flight (default 64).")
@click.option("--student-concurrency", type=int, help="Student requests in flight (default 64).")
@click.option("--teacher-timeout", type=float, help="Teacher read timeout, seconds.")
@click.option("--student-timeout", type=float, help="Student read timeout, seconds.")
@click.option("--strategy", type=click.Choice(["cooperative", "teacher-only", "student-only"]),
              help="cooperative (TESSY, default) or a single-role baseline.")
@click.option("--mode", type=click.Choice(["stream", "step"]), help="stream (default) or step.")
@click.option("--step-tokens", type=int, help="k tokens per request in step mode (default 20).")
@click.option("--turn-tokens", type=int, help="Most tokens per stream-mode request (1024).")
@click.option("--max-thinking-tokens", type=int, help="Thinking budget per trajectory (8192).")
@click.option("--max-answer-tokens", type=int, help="Answer budget (2048).")
@click.option("--max-turns", type=int, help="Most turns per trajectory (1000).")
@click.option("--answer-role", type=click.Choice(["student", "teacher"]), help="Who answers.")
@click.option("--concurrency", type=int, help="Problems in flight (default 32).")
@click.option("--retries", type=int, help="Retries of a failed request (default 3).")
@click.option("--server-down-after", type=float,
              help="Stop the run when a server refuses everything this long (300 s; 0: wait).")
@click.option("--grace", type=float, help="Seconds in-flight problems get after SIGINT/SIGTERM (30).")
@click.option("--temperature", type=float, help="Sampling temperature (both roles).")
@click.option("--top-p", type=float, help="Nucleus mass (both roles).")
@click.option("--top-k", type=int, help="Top-k (both roles).")
@click.option("--min-p", type=float, help="Min-p (both roles).")
@click.option("--seed", type=int, help="Base seed (both roles).")
@click.option("--no-stream", is_flag=True, help="Non-streaming requests (step mode).")
@click.option("--api-key", help="Bearer token for the servers (or env OPENAI_API_KEY).")
@click.option("--prompt-template", help="Jinja template over a record's fields, or @file.")
@click.option("--limit", type=int, help="Only the first N problems.")
@click.option("--messages", is_flag=True, help="Write `messages` instead of `dialogs`.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="TOML/JSON config.")
@click.option("--dry-run", is_flag=True, help="Use scripted fake models: checks inputs and plumbing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def synthesize_command(inputs: tuple[str, ...], **opts: Any) -> None:
    """Write SFT records for the problems in INPUTS (default: the shipped demo problems).

    With no --teacher/--student this runs the embedded default: gemma-3-270m (teacher) and
    SmolLM2-135M-Instruct (student) in-process on the CPU.
    """
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
