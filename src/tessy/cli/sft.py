"""`tessy sft RECORDS... -o DIR --model STUDENT`: fine-tune the student on SFT data with TRL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tessy.cli.options import apply, dataclass_options, overrides
from tessy.config import SFT_PRESETS, SFTTrainConfig

SFT_OPTIONS = list(dataclass_options(SFTTrainConfig))


@click.command("sft")
@click.argument("records", nargs=-1, required=True)
@apply(SFT_OPTIONS)
@click.option("--preset", type=click.Choice(sorted(SFT_PRESETS)),
              help="Start from a published recipe (paper: batch 128, lr 5e-5, 9 epochs, bf16); "
              "options given still win.")
@click.option("--skip-bad", is_flag=True, help="Leave out records that cannot be examples "
              "(listed on stderr) instead of stopping at the first.")
@click.option("--report", "report_path", type=click.Path(exists=True, dir_okay=False),
              help="A `tessy report --json` file of the data: its NLL figures go in the card.")
@click.option("--sft-arg", "sft_args", multiple=True, metavar="KEY=VALUE",
              help="Another field of TRL's SFTConfig (JSON value, e.g. max_grad_norm=0.5 or "
              "lr_scheduler_kwargs='{\"num_cycles\": 1}'); repeatable; wins over tessy's.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary: no progress, no "
              "loading bars.")
def sft_command(records: tuple[str, ...], preset: str | None, skip_bad: bool,
                report_path: str | None, sft_args: tuple[str, ...], quiet: bool,
                **opts: Any) -> None:
    """Fine-tune a student on RECORDS (tessy output, `tessy export` Parquet/dataset dirs, or any
    chat SFT JSONL): loss on the assistant turn only, through the student's chat template."""
    from tessy.sft.card import moved_text
    from tessy.sft.examples import read_examples
    from tessy.sft.train import fresh_output, train_sft

    given = overrides(SFT_OPTIONS, opts) | ({"sft_args": list(sft_args)} if sft_args else {})
    config = SFTTrainConfig(**(SFT_PRESETS.get(preset or "", {}) | given))
    fresh_output(Path(config.output))
    data = read_examples(list(records), skip_bad)
    for line in data.skipped:
        click.echo(f"skipped: {line}", err=True)
    report = json.loads(Path(report_path).read_text(encoding="utf-8")) if report_path else None
    result = train_sft(data, config, progress=not quiet, report=report)
    if result is None:  # not the main process of a multi-GPU run
        return
    losses = [v for _, v in result.loss]
    curve = f", loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else ""
    if result.eval_loss:
        curve += f", eval loss {result.eval_loss[-1][1]:.3f} ({result.eval_examples} held out)"
    click.echo(f"trained on {result.masks.rows} examples ({result.masks.trained_tokens} tokens; "
               f"{result.masks.too_long} too long, {result.skipped} skipped) in {result.steps} "
               f"steps, {result.seconds}s{curve}; weights moved {moved_text(result.moved)} -> "
               f"{result.output}")
    if not result.moved["tensors_changed"]:
        click.echo("warning: no weight changed; the saved model is the base model", err=True)
