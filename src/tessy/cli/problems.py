"""`tessy problems DIR`: a generated problem set with gold answers, split train / held-out."""

from __future__ import annotations

import click


@click.command("problems")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--count", type=int, default=200, show_default=True, help="Problems in all.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--held-out", type=float, default=0.2, show_default=True,
              help="Share written to held_out.jsonl.")
def problems_command(directory: str, count: int, seed: int, held_out: float) -> None:
    """Write DIRECTORY/train.jsonl and DIRECTORY/held_out.jsonl: arithmetic word problems
    (gold: a number) and lettered multiple-choice items (gold: A-D), for evaluating a student
    with `synthesize --strategy student-only` and `report` (which grades them)."""
    from tessy.data.generate import write_problem_set

    train, held = write_problem_set(directory, count, seed, held_out)
    click.echo(f"{count} problems -> {train} + {held}")
