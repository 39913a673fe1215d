"""`tessy merge OUTPUT`: fold the shards of a run (`--shard K/N`, `--workers`) into OUTPUT."""

from __future__ import annotations

import click


@click.command("merge")
@click.argument("output", type=click.Path(dir_okay=False))
def merge_command(output: str) -> None:
    """Move the records of OUTPUT.shards/*.jsonl into OUTPUT, each id once (safe to rerun)."""
    from pathlib import Path

    from tessy.io.jsonl import read_ids
    from tessy.io.shards import merge, shard_dir, shard_outputs

    shards = shard_outputs(output)
    if not shards:
        click.echo(f"nothing to merge: no shard files in {shard_dir(output)}")
        return
    moved = merge(output)
    click.echo(f"merged {moved} records from {len(shards)} shard files -> {output} "
               f"({len(read_ids(Path(output)))} records)")
