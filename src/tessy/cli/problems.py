"""`tessy problems DIR`: a problem set with gold answers or tests, split train / held-out."""

from __future__ import annotations

import click


@click.command("problems")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--source", "sources", multiple=True, default=("arithmetic",), show_default=True,
              help="arithmetic | humaneval | codeio | gym:TASK[,TASK...] (any reasoning-gym "
              "task, e.g. gym:chain_sum,basic_arithmetic); repeat for several.")
@click.option("--count", type=int, default=200, show_default=True,
              help="Problems per source (HumanEval has 164).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--held-out", type=float, default=0.2, show_default=True,
              help="Share of each source written to held_out.jsonl.")
@click.option("--against", multiple=True, type=click.Path(exists=True),
              help="Benchmark problems (any problem file): train problems that overlap them "
              "or the held-out split are dropped and listed in DIR/dropped.jsonl.")
@click.option("--similarity", type=float, default=100.0, show_default=True,
              help="Below 100, also a fuzzy overlap: two problems that state the same numbers "
              "and are at least this similar (rapidfuzz, 0-100; templated procedural tasks "
              "look alike, see README). At 100: copies only (one text contains the other).")
@click.option("--sandbox", default="auto", show_default=True, metavar="ISOLATION|URL",
              help="Where reasoning-gym makes its problems (codeio runs its code samples).")
def problems_command(directory: str, sources: tuple[str, ...], count: int, seed: int,
                     held_out: float, against: tuple[str, ...], similarity: float,
                     sandbox: str) -> None:
    """Write DIRECTORY/train.jsonl and DIRECTORY/held_out.jsonl: problems whose rows say how
    an answer is graded (a gold answer, HumanEval tests, a reasoning-gym scorer), for
    `synthesize` on the train split and evaluating a student on the held-out one."""
    from tessy.data.problem_set import write_problem_set
    from tessy.escape import printable

    made = write_problem_set(directory, list(sources), count, seed, held_out, list(against),
                             similarity, sandbox)
    for overlap in made.dropped[:10]:
        click.secho(f"dropped {printable(overlap.id)}: overlaps {printable(overlap.reference)} "
                    f"(similarity {overlap.similarity:g})", fg="yellow", err=True)
    if len(made.dropped) > 10:
        click.secho(f"... {len(made.dropped) - 10} more in {directory}/dropped.jsonl",
                    fg="yellow", err=True)
    per = ", ".join(f"{n} {source}" for source, n in made.counts.items())
    click.echo(f"{per} -> {made.train} + {made.held_out}"
               + (f" ({len(made.dropped)} overlapping train problems dropped)"
                  if made.dropped else ""))
