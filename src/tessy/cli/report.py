"""`tessy report` (figures of one or more datasets) and `tessy show` (one coloured trajectory)."""

from __future__ import annotations

import os
import sys

import click

FEW_SAMPLES = 20  # below this a dataset's shares and rates are mostly noise (accuracy ±20 pts)


@click.command("report")
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--student", help="Student that scores the text: a model dir / GGUF / hub id, or a "
              "server URL (…/v1, needs echo+logprobs). Default: the embedded SmolLM2.")
@click.option("--student-template", default=None,
              help="Student's prompt template (default auto; chat-think for the embedded one).")
@click.option("--student-tokenizer", help="HF tokenizer for the template when scoring over HTTP.")
@click.option("--student-model", help="Model name on the student server.")
@click.option("--reference", help="Label or path of the student-only dataset for TF-IDF "
              "similarity (default: the one whose strategy is student-only).")
@click.option("-o", "--output", default="tessy-report.html", show_default=True,
              help="HTML report.")
@click.option("--json", "json_path", help="Also write every figure as JSON here.")
@click.option("--no-nll", is_flag=True, help="Skip the student NLL (no model needed).")
@click.option("--batch-size", default=4, show_default=True, help="Samples per forward pass.")
@click.option("--sandbox", default="auto", show_default=True, metavar="ISOLATION|URL",
              help="Where code answers run to be graded: auto, bwrap, unshare, none (local "
              "processes with limits; see README, Security model) or a SandboxFusion URL.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, no loading bars.")
def report_command(data: tuple[str, ...], student: str | None, student_template: str | None,
                   student_tokenizer: str | None, student_model: str | None,
                   reference: str | None, output: str, json_path: str | None, no_nll: bool,
                   batch_size: int, sandbox: str, quiet: bool) -> None:
    """Is DATA on-policy for the student? NLL by span origin, shares, style, similarity, and
    answers graded as their rows say (gold answers; code run on its tests in a sandbox)."""
    from tessy import aio
    from tessy.progress import quiet_libraries
    from tessy.report.run import open_scorer, write_report
    from tessy.report.terminal import table
    from tessy.secrets import env_api_key

    if quiet:
        quiet_libraries()

    async def run():
        if no_nll:
            return await write_report(list(data), None, reference, output, json_path, not quiet,
                                      sandbox)
        model, template = student, student_template
        if model is None:
            from tessy.embedded import smollm2_gguf

            model, template = str(smollm2_gguf()), template or "chat-think"
        async with open_scorer(model, template or "auto", student_tokenizer, student_model,
                               batch_size, env_api_key("student")) as scorer:
            return await write_report(list(data), scorer, reference, output, json_path,
                                      not quiet, sandbox)

    figs = aio.run(run())
    for label, d in figs["datasets"].items():
        if d["samples"] < FEW_SAMPLES:
            click.secho(f"warning: {label} ({d['path']}): {d['samples']} samples; its figures "
                        f"(shares, NLL, style, accuracy) need {FEW_SAMPLES}+ to mean much",
                        fg="yellow", err=True)
    click.echo(table(figs))
    click.echo(f"report -> {output}" + (f", figures -> {json_path}" if json_path else ""))


@click.command("show")
@click.argument("data", type=click.Path(exists=True))
@click.option("--id", "sample_id", help="Record id (default: the first record).")
@click.option("-n", "--index", type=int, default=0, show_default=True, help="Record number.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="auto: colour on a terminal (unless NO_COLOR is set), "
              "else [S]...[/S] student, [T] teacher, [A] answer markers.")
def show_command(data: str, sample_id: str | None, index: int, color: str) -> None:
    """Print one trajectory of DATA with the student's and the teacher's spans coloured."""
    from tessy.errors import InputError
    from tessy.report.dataset import load_dataset
    from tessy.report.terminal import show

    dataset = load_dataset(data)
    samples = dataset.samples
    if sample_id is not None:
        sample = dataset.by_id().get(sample_id)
        if sample is None:
            raise InputError(f"{data}: no record with id {sample_id!r}")
    elif 0 <= index < len(samples):
        sample = samples[index]
    else:
        raise InputError(f"{data}: record {index} out of range (it has {len(samples)})")
    colored = color == "always" or (color == "auto" and sys.stdout.isatty()
                                    and not os.environ.get("NO_COLOR"))
    click.echo(show(sample, colored), color=colored)
