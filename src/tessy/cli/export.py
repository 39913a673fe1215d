"""`tessy export`: output JSONL to Parquet or a `datasets` dataset."""

from __future__ import annotations

import click

from tessy.io.export import export


@click.command("export")
@click.argument("records", type=click.Path(exists=True, dir_okay=False))
@click.argument("dest", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["parquet", "dataset"]), default=None,
              help="Default: parquet if DEST ends in .parquet, else a saved dataset dir.")
@click.option("--chat-key", type=click.Choice(["dialogs", "messages"]), default="dialogs",
              show_default=True, help="Name of the conversation column.")
@click.option("--drop-tessy", is_flag=True, help="Leave out the `tessy` block (segments, stats).")
def export_command(records: str, dest: str, fmt: str | None, chat_key: str,
                   drop_tessy: bool) -> None:
    """Turn RECORDS (tessy output JSONL) into an SFT dataset at DEST."""
    fmt = fmt or ("parquet" if dest.endswith(".parquet") else "dataset")
    n = export(records, dest, fmt, chat_key, keep_tessy=not drop_tessy)
    click.echo(f"wrote {n} records to {dest} ({fmt}, column {chat_key!r})")
