"""`tessy predictor`: sample, annotate, train and evaluate boundary predictors (docs/DESIGN.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from tessy import aio
from tessy.cli.options import apply, dataclass_options, overrides
from tessy.cli.synthesize import run_from_options, run_options
from tessy.config import TRAIN_PRESETS, PredictorTrainConfig


@click.group("predictor")
def predictor_group() -> None:
    """Boundary predictors: sample traces, annotate style spans, train, evaluate."""


@predictor_group.command("sample")
@click.argument("inputs", nargs=-1)
@click.option("--role", type=click.Choice(["student", "teacher"]), required=True,
              help="Whose traces to sample.")
@click.option("-o", "--output", required=True, help="Segments JSONL.")
@click.option("--from-records", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Cut existing single-role records instead of generating (repeatable).")
@click.option("--traces", help="Where generated traces go (default OUTPUT.traces.jsonl; resumed).")
@click.option("--words", type=int, default=60, show_default=True, help="Mean segment length.")
@click.option("--per-trace", type=int, help="At most this many segments per trace (default all).")
@click.option("--segment-seed", type=int, default=0, show_default=True, help="Seed of the cuts.")
@run_options(skip=("--output", "--strategy"))
def sample_command(inputs: tuple[str, ...], role: str, output: str, from_records: tuple[str, ...],
                   traces: str | None, words: int, per_trace: int | None, segment_seed: int,
                   **opts: Any) -> None:
    """Write ~60-word segments of ROLE's thinking: from INPUTS problems through a ROLE-only run
    of the engine (same model options as `tessy synthesize`), or from --from-records files."""
    from tessy.io.jsonl import write_jsonl
    from tessy.predictor.segments import sample_segments

    sources = list(from_records)
    if not sources:
        traces = traces or f"{output}.traces.jsonl"
        run_from_options(inputs, opts | {"output": traces, "strategy": f"{role}-only",
                                      "allow_failures": True})  # sample what was written
        sources = [traces]
    counts: dict[str, int] = {}
    rows = list(sample_segments(sources, role, words, per_trace, segment_seed, counts))
    write_jsonl(output, rows)  # whole or not at all: a rerun gives the same segments
    short = (f"; {counts['too_short']} shorter than {max(1, words // 2)} words gave none"
             if counts["too_short"] else "")
    click.echo(f"{len(rows)} segments of {role} thinking from {counts['traces']} traces in "
               f"{len(sources)} file(s){short} -> {output}")


@predictor_group.command("annotate")
@click.argument("segments", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, help="Labelled JSONL (resumed if it exists).")
@click.option("--annotator", default="lexicon", show_default=True,
              help="lexicon, or an OpenAI-compatible base URL (…/v1) of an instruction model.")
@click.option("--model", help="Model name on that server (default: the first listed).")
@click.option("--role", type=click.Choice(["student", "teacher"]), default="student",
              show_default=True, help="Lexicon list to use (the LLM's instruction is the same).")
@click.option("--concurrency", type=int, default=32, show_default=True, help="Requests in flight.")
@click.option("--api-key", help="Bearer token (or env OPENAI_API_KEY).")
@click.option("--instruction", help="The LLM's annotation instruction (text or @file), with "
              "{text} where the segment goes (default: tessy's, after the paper's).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def annotate_command(segments: str, output: str, annotator: str, model: str | None, role: str,
                     concurrency: int, api_key: str | None, instruction: str | None,
                     quiet: bool) -> None:
    """Label the style spans of every segment in SEGMENTS."""
    from tessy.errors import ConfigError
    from tessy.predictor.annotation import annotate_file
    from tessy.predictor.style_spans import INSTRUCTION, instruction_text

    if annotator != "lexicon" and not annotator.startswith(("http://", "https://")):
        raise ConfigError(f"--annotator: use lexicon or an http(s) URL, not {annotator!r}")
    if instruction and annotator == "lexicon":
        raise ConfigError("--instruction: only an LLM --annotator (a URL) reads an instruction")
    prompt = instruction_text(instruction) if instruction else INSTRUCTION
    key = api_key or os.environ.get("OPENAI_API_KEY")
    s = aio.run(annotate_file(segments, output, annotator, role, model, key, concurrency,
                              progress=not quiet, instruction=prompt))
    share = s.style_words / s.words if s.words else 0.0
    dropped = f" (dropped -> {output}.malformed.jsonl)" if s.malformed else ""
    click.echo(f"{s.labelled} labelled ({share:.0%} of words style), {s.malformed} malformed"
               f"{dropped}, {s.already_done} already done -> {output}")
    for example in s.examples:
        click.secho(f"malformed answer: {example!r}", fg="yellow", err=True)


TRAIN_OPTIONS = list(dataclass_options(PredictorTrainConfig))


def train_config(opts: dict[str, Any], preset: str | None) -> PredictorTrainConfig:
    """The training config: the preset's settings, then the options given."""
    return PredictorTrainConfig(**(TRAIN_PRESETS.get(preset or "", {}) | overrides(TRAIN_OPTIONS, opts)))


@predictor_group.command("train")
@click.argument("labelled", nargs=-1, required=True)
@apply(TRAIN_OPTIONS)
@click.option("--preset", type=click.Choice(sorted(TRAIN_PRESETS)),
              help="Start from a published recipe (authors: the TESSY authors' settings); "
              "options given still win.")
@click.option("--overwrite", is_flag=True, help="Write into -o even if it is not empty.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train_command(labelled: tuple[str, ...], preset: str | None, overwrite: bool, quiet: bool,
                  **opts: Any) -> None:
    """Fine-tune a token classifier on LABELLED segment files."""
    from tessy.io.jsonl import refuse_to_replace
    from tessy.predictor.labels import read_labelled
    from tessy.predictor.train import train

    config = train_config(opts, preset)
    refuse_to_replace(config.output, overwrite)
    segments = [s for path in labelled for s in read_labelled(path)]
    figures = train(segments, config, progress=not quiet)
    held = figures.get("held_out") or {}
    extra = (f", held-out word accuracy {held['word_accuracy']:.1%}, span F1 {held['span_f1']:.2f}"
             if held else "")
    click.echo(f"trained on {figures['train_segments']} segments in {figures['seconds']}s "
               f"(loss {figures['train_loss']}){extra} -> {config.output}")


@predictor_group.command("eval")
@click.argument("predictor")
@click.argument("labelled", nargs=-1, required=True)
@click.option("--role", type=click.Choice(["student", "teacher"]), default="student",
              show_default=True, help="Role of a lexicon predictor.")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "json_path", help="Also write the figures as JSON here.")
def eval_command(predictor: str, labelled: tuple[str, ...], role: str, device: str,
                 json_path: str | None) -> None:
    """Score PREDICTOR (lexicon or a model dir / hub id) on LABELLED held-out segments."""
    from tessy.boundary.lexicon import LexiconPredictor
    from tessy.predictor.evaluate import evaluate, evaluate_classifier, render
    from tessy.predictor.labels import read_labelled

    segments = [s for path in labelled for s in read_labelled(path)]
    if predictor == "lexicon":
        result = evaluate(LexiconPredictor(role), segments)
    else:
        from tessy.boundary.classifier import load_classifier

        result = evaluate_classifier(load_classifier(predictor, role, device), segments)
    click.echo(render(result, predictor))
    if json_path:
        Path(json_path).write_text(json.dumps(result.summary(), indent=2) + "\n")
