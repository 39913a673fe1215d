"""The `tessy` command: thin commands that parse, build a config, call the library, exit."""

from __future__ import annotations

import os
import sys

import click

from tessy import __version__
from tessy.cli.export import export_command
from tessy.cli.merge import merge_command
from tessy.cli.predictor import predictor_group
from tessy.cli.problems import problems_command
from tessy.cli.report import report_command, show_command
from tessy.cli.setup import setup_command
from tessy.cli.sft import sft_command
from tessy.cli.synthesize import synthesize_command
from tessy.errors import TessyError
from tessy.escape import printable


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tessy")
@click.option("--traceback", is_flag=True, help="Show full tracebacks (or set TESSY_TRACEBACK=1).")
def cli(traceback: bool) -> None:
    """TESSY: teacher and student write one reasoning trace together, for on-policy SFT data."""
    # `--traceback` is read by `main`, which must decide before click has parsed anything.


cli.add_command(synthesize_command)
cli.add_command(export_command)
cli.add_command(merge_command)
cli.add_command(report_command)
cli.add_command(show_command)
cli.add_command(predictor_group)
cli.add_command(problems_command)
cli.add_command(sft_command)
cli.add_command(setup_command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a TessyError becomes one line on stderr and exit code 1."""
    try:
        code = cli.main(args=argv, prog_name="tessy", standalone_mode=False)
    except TessyError as exc:
        args = sys.argv[1:] if argv is None else argv
        if os.environ.get("TESSY_TRACEBACK") or "--traceback" in args:
            raise
        click.secho(f"Error: {printable(str(exc))}", fg="red", err=True)  # data in messages
        return 1
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return code if isinstance(code, int) else 0  # click.exceptions.Exit(n) comes back as n
