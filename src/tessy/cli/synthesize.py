"""`tessy synthesize`: problems in, cooperative (or baseline) SFT records out.

Its options come from the config dataclasses (`tessy.cli.options`); the few written here are
the ones that are not one field: the role specs (`--teacher URL|model|fake`), `--step-tokens
K|STUDENT/TEACHER`, `--messages`, `--config`, `--dry-run`, `--progress` and `--quiet`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from tessy import aio
from tessy.cli.options import apply, overrides, run_config_options
from tessy.config import RunConfig, check_keys, load_config_file, run_config_from_dict
from tessy.embedded import DEMO_SAMPLING, DEMO_SYNTHESIS
from tessy.errors import ConfigError, ServerUnavailable
from tessy.escape import printable
from tessy.io import shards as shard_files
from tessy.io.jsonl import read_ids
from tessy.io.shards import Shard, finished_ids, locked, shard_dir
from tessy.io.writer import final_failures
from tessy.progress import STYLES, quiet_libraries
from tessy.report.quality import quality_line
from tessy.secrets import auth_env, env_api_key

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # the shell's convention, 128 + signal number
FAILED_EXIT = 3  # the run ended, but some problems failed (a bad key, a dead endpoint ...)

CONFIG_OPTIONS = run_config_options()
HELP = f"""Write SFT records for the problems in INPUTS (default: the shipped demo problems).

With no --teacher/--student this runs the embedded default: Qwen2.5-Coder-1.5B-Instruct
(teacher) and SmolLM2-135M-Instruct (student), each on a llama-server tessy starts on this CPU
(`tessy setup` builds it), with settings of its own where the defaults below say otherwise:
temperature {DEMO_SAMPLING['temperature']}, top-p {DEMO_SAMPLING['top_p']}, concurrency
{DEMO_SYNTHESIS['concurrency']}, {DEMO_SYNTHESIS['max_thinking_tokens']} thinking tokens, the
answer read from the thinking (options given still win). The defaults below apply to every
other run.
"""


def role_spec(role: str, specs: tuple[str, ...]) -> dict[str, Any]:
    """RoleConfig fields from `--teacher`/`--student`: URLs (replicas), a local model, or fake."""
    values = [v for s in specs for v in s.split(",") if v]
    if not values:
        return {}
    if all(v.startswith(("http://", "https://")) for v in values):
        return {"backend": "openai_http", "base_urls": values}
    if values == ["fake"]:
        return {"backend": "fake"}
    if len(values) == 1 and values[0].endswith(".gguf"):  # on a llama-server tessy runs
        return {"backend": "llama_server", "model": values[0]}
    if len(values) == 1:
        return {"backend": "local", "model": values[0]}
    raise ConfigError(f"--{role}: give URLs (replicas), one local model, or 'fake'")


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` updated with `extra`, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if nested else value
    return merged


def step_tokens(value: str) -> dict[str, Any]:
    """`--step-tokens K` (both roles) or `STUDENT/TEACHER`, as per-role fields."""
    try:
        ks = [int(p) for p in value.split("/")]
    except ValueError:
        ks = []
    if len(ks) not in (1, 2):
        raise ConfigError(f"--step-tokens: {value!r} is not K or STUDENT/TEACHER (e.g. 20 or 5/10)")
    return {"student": {"step_tokens": ks[0]}, "teacher": {"step_tokens": ks[-1]}}


def build_config(inputs: tuple[str, ...], opts: dict[str, Any]) -> tuple[RunConfig, bool]:
    """The run config from a config file and CLI options; True when it is the embedded default."""
    data: dict[str, Any] = load_config_file(opts["config"]) if opts.get("config") else {}
    check_keys(data, opts.get("config") or "config")
    roles = {r: role_spec(r, opts.get(r) or ()) for r in ("teacher", "student")}
    if opts.get("dry_run"):
        for spec in roles.values():
            spec |= {"backend": "fake", "template": spec.get("template", "qwen3")}
    given = overrides(CONFIG_OPTIONS, opts)
    if opts.get("step_tokens") is not None:
        given = merge(step_tokens(opts["step_tokens"]), given)
    if opts.get("messages"):
        given["chat_key"] = "messages"
    has_models = any(k in data for k in roles) or any(roles.values())
    embedded = not has_models and not opts.get("dry_run")
    if embedded:
        from tessy.embedded import demo_models

        teacher, student = demo_models()
        data = merge({"teacher": asdict(teacher), "student": asdict(student),
                      "synthesis": DEMO_SYNTHESIS}, data)
    elif not opts.get("dry_run") and bool(roles["teacher"]) != bool(roles["student"]) and not data:
        strategy = (given.get("synthesis") or {}).get("strategy", "cooperative")
        alone = "teacher" if roles["teacher"] else "student"
        if strategy != f"{alone}-only":
            raise ConfigError("give both --teacher and --student (or neither, for the embedded "
                              f"default; or only --{alone} with --strategy {alone}-only)")
        idle = "student" if alone == "teacher" else "teacher"
        roles[idle] = {"backend": "fake", "template": "qwen3"}  # opened, never asked to write
    data = merge(merge(data, roles), given)
    if inputs:
        data["inputs"] = list(inputs)
    config = run_config_from_dict(data)
    for role in ("teacher", "student"):  # credentials, in `tessy.secrets`' order
        rc = config.role(role)
        if rc.backend == "openai_http":
            rc.api_key = rc.api_key or opts.get("api_key") or env_api_key(role)
            rc.basic_auth = rc.basic_auth or os.environ.get(auth_env(role)) or None
    if not config.inputs:
        from tessy.embedded import DEMO_PROBLEMS

        config.inputs = [str(DEMO_PROBLEMS)]
    return config, embedded


def template_text(value: str | None) -> str | None:
    """A prompt template given inline or as `@file`."""
    if value and value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            raise ConfigError(f"--prompt-template: {value[1:]}: {exc.strerror}") from exc
    return value


SPEC_OPTIONS = [
    click.option("--teacher", multiple=True, help="Server URL(s) (…/v1), a GGUF file (served by a "
                 "llama-server tessy starts), a local model dir/hub id (transformers, in-process), "
                 "or 'fake'. Repeat or comma-separate URLs for replicas."),
    click.option("--student", multiple=True, help="Same as --teacher, for the student."),
    click.option("--step-tokens", help="k per request in step mode for both roles (K) or per "
                 "role (STUDENT/TEACHER; the authors' code: 5/10)."),
    click.option("--messages", is_flag=True, help="Write `messages` instead of `dialogs`."),
    click.option("--api-key", help="Bearer token for both roles' servers (after "
                 "--teacher-api-key / --student-api-key; else env TESSY_TEACHER_API_KEY / "
                 "TESSY_STUDENT_API_KEY, else OPENAI_API_KEY); never written to a file."),
    click.option("--config", type=click.Path(exists=True, dir_okay=False),
                 help="TOML/JSON config file (the RunConfig fields; options override it)."),
    click.option("--dry-run", is_flag=True, help="Both roles as tessy's scripted fake model (no "
                 "model loaded, no server asked): checks that the inputs read, the prompt "
                 "template renders and the output is writable; its records are placeholders."),
    click.option("--ray", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
                 help="Run the shards (--workers N of them, default one per node) as Ray tasks "
                 "on the cluster at ADDRESS (alone: this machine's cluster or a new local one); "
                 "OUTPUT must be on a path every node sees. Needs `pip install 'tessy[ray]'`."),
    click.option("--allow-failures", is_flag=True, help="Exit 0 even when problems failed "
                 f"(default: exit {FAILED_EXIT} after writing the rest, so scripts and CI see a "
                 "bad key or a dead endpoint; a rerun retries the failed ones)."),
    click.option("--progress", type=click.Choice(STYLES[:-1]), default="auto", show_default=True,
                 help="auto: a bar on a terminal, else a log line every --progress-every "
                 "seconds; json: those lines as JSON (batch jobs)."),
    click.option("--progress-every", type=float, default=30.0, show_default=True,
                 help="Seconds between progress lines (log, json)."),
    click.option("-q", "--quiet", is_flag=True, help="Print only the summary: no progress, no "
                 "loading bars."),
]


def run_options(skip: tuple[str, ...] = ()):
    """Every option of `tessy synthesize`, leaving out those named in `skip`."""
    generated = apply(CONFIG_OPTIONS, skip)

    def decorate(command):
        for decorator in reversed(SPEC_OPTIONS):
            command = decorator(command)
        return generated(command)
    return decorate


@click.command("synthesize", help=HELP)
@click.argument("inputs", nargs=-1)
@run_options()
def synthesize_command(inputs: tuple[str, ...], **opts: Any) -> None:
    run_synthesis(inputs, opts)


def run_synthesis(inputs: tuple[str, ...], opts: dict[str, Any]) -> RunConfig:
    """Build the config, run it with signal handling, print the summary; returns the config."""
    from tessy.io.problems import ProblemReader, with_samples
    from tessy.io.writer import check_output
    from tessy.synthesis.scheduler import StopRequest, open_roles, synthesize

    opts["prompt_template"] = template_text(opts.get("prompt_template"))
    style = "none" if opts["quiet"] else opts["progress"]
    if opts["quiet"]:
        quiet_libraries()
    config, embedded = build_config(inputs, opts)
    if not config.shard:  # a shard writes its own file (OUT.shards/K-of-N.jsonl)
        check_output(config.output, config.inputs)
    reader = ProblemReader(config.inputs, config.prompt_template)
    problems = list(reader)
    if config.limit:
        problems = problems[: config.limit]
    problems = with_samples(problems, config.samples)
    for line in reader.skipped:
        click.secho(f"skipped {printable(line)}", fg="yellow", err=True)
    if embedded and not opts["quiet"]:
        click.echo("embedded default: Qwen2.5-Coder-1.5B-Instruct (teacher) + SmolLM2-135M-Instruct "
                   "(student), each on a llama-server on this CPU", err=True)
    if config.workers > 1 or opts.get("ray"):
        if config.shard:
            raise ConfigError("--ray: runs every shard itself; leave out --shard")
        return run_with_workers(config, problems, reader.skipped, style, opts.get("ray"),
                                opts.get("allow_failures", False))
    main_output = config.output
    config, problems, done, lock = sharded(config, problems)
    problems, finished, failed = left_to_do(config, main_output, problems, done)
    if not any(p.id not in finished for p in problems):
        nothing_to_do(config, len(finished), failed)
        return config

    stop = StopRequest()

    def on_signal(name: str) -> None:
        if not stop.soft.is_set():
            click.secho(f"{name}: no new problems; in-flight ones get {config.synthesis.grace:g}s "
                        "to finish (signal again to stop at once)", fg="yellow", err=True)
        stop(name)

    async def run():
        async with open_roles(config) as roles:  # a signal while loading just ends the process
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal, sig.name)
            return await synthesize(config, problems, roles, progress=style, stop=stop,
                                    progress_every=opts["progress_every"],
                                    done=done)

    with lock:
        summary = aio.run(run())
    resumed = f", {summary.resumed} continued from checkpoints" if summary.resumed else ""
    left = f", {len(failed)} failed before (--retry-failed)" if failed else ""
    click.echo(
        f"{summary.written} written, {summary.failed} failed{left}, {summary.already_done} already"
        f" done, {len(reader.skipped)} bad rows{resumed} -> {config.output} "
        f"(teacher share {summary.teacher_share():.0%}, {summary.seconds:.1f}s)"
    )
    if summary.written and not config.shard:
        click.echo(quality_line(config.output))
    for line in summary.errors[:5]:
        click.secho(f"failed {printable(line)}", fg="red", err=True)
    if summary.stopped in SIGNAL_EXIT:
        click.secho(f"stopped by {summary.stopped}: {summary.in_flight} in flight kept as "
                    "checkpoints; rerun the same command to continue", fg="yellow", err=True)
        raise click.exceptions.Exit(SIGNAL_EXIT[summary.stopped])
    if summary.stopped:
        raise ServerUnavailable(summary.stopped)
    failed_exit(summary.failed, opts)
    return config


def failed_exit(failed: int, opts: dict[str, Any]) -> None:
    """Exit FAILED_EXIT when problems failed, unless --allow-failures: scripts and CI see it."""
    if failed and not opts.get("allow_failures"):
        raise click.exceptions.Exit(FAILED_EXIT)


def left_to_do(config: RunConfig, main_output: str, problems: list[Any], done: set[str] | None
               ) -> tuple[list[Any], set[str], set[str]]:
    """The problems a run goes through (those that failed for good under this config are left
    out unless `retry_failed`), the ids already written, and the ids left out."""
    finished = read_ids(Path(config.output)) | (done or set())
    failed: set[str] = set()
    if not config.retry_failed:
        key = config.config_hash()
        failed = (final_failures(main_output, key) | final_failures(config.output, key)) - finished
    failed &= {p.id for p in problems}
    return [p for p in problems if p.id not in failed], finished, failed


def nothing_to_do(config: RunConfig, finished: int, failed: set[str]) -> None:
    """Say so, without loading a model or touching the run record."""
    retry = f", {len(failed)} failed before (--retry-failed retries them)" if failed else ""
    click.echo(f"nothing to do: {finished} already done{retry} -> {config.output}")


def sharded(config: RunConfig, problems: list[Any]) -> tuple[
        RunConfig, list[Any], set[str] | None, AbstractContextManager[None]]:
    """With `shard`: the config writing to the shard's file, the shard's problems, the ids every
    shard and the output hold already, and the shard's lock. Without: shards left by earlier
    runs are merged first."""
    if not config.shard:
        moved = shard_files.merge(config.output)
        if moved:
            click.echo(f"merged {moved} records from {shard_dir(config.output)} into "
                       f"{config.output}", err=True)
        return config, problems, None, nullcontext()
    shard = Shard.parse(config.shard)
    out = shard.output(config.output)
    return (dataclasses.replace(config, output=str(out)), [p for p in problems if shard.owns(p.id)],
            finished_ids(config.output), locked(out))


def run_with_workers(config: RunConfig, problems: list[Any], skipped: list[str],
                     style: str, ray: str | None = None, allow_failures: bool = False
                     ) -> RunConfig:
    """`--workers N` / `--ray`: the run as shard processes or Ray tasks, merged at the end."""
    done = finished_ids(config.output)
    problems, _, failed = left_to_do(config, config.output, problems, done)
    todo = sum(p.id not in done for p in problems)
    if not todo:
        nothing_to_do(config, len(done), failed)
        return config
    if ray:
        from tessy.synthesis.ray_shards import run_on_ray

        result = run_on_ray(config, ray, todo, progress=style)
    else:
        from tessy.synthesis.workers import run_workers

        result = run_workers(config, todo, progress=style)
    s = result.summary
    resumed = f", {s['resumed']} continued from checkpoints" if s["resumed"] else ""
    thinking = sum(s["tokens"].values())
    share = s["tokens"]["teacher"] / thinking if thinking else 0.0
    click.echo(f"{s['written']} written, {s['failed']} failed, {len(done)} already done, "
               f"{len(skipped)} bad rows{resumed} by {len(result.codes)} "
               f"{'Ray tasks' if ray else 'workers'} -> {config.output}"
               f" (teacher share {share:.0%}, {s['seconds']:.1f}s; {result.merged} merged)")
    if s["written"]:
        click.echo(quality_line(config.output))
    broken = [(k, c) for k, c in enumerate(result.codes, 1) if c != 0]
    for k, code in broken:
        log = Shard(k, len(result.codes)).output(config.output)
        click.secho(f"worker {k}/{len(result.codes)} exited with {code}: see {log}.log; rerun "
                    "the same command to continue", fg="red", err=True)
    if broken:
        raise click.exceptions.Exit(SIGNAL_EXIT.get(result.summary["stopped"], 1))
    failed_exit(s["failed"], {"allow_failures": allow_failures})
    return config
