"""The ``llem`` command line.

Command modules import what they need inside their bodies, so ``llem --help`` and every
command that does not run a model start without importing torch.
"""

import logging
import sys
from importlib.metadata import version as package_version
from typing import Annotated

import typer

from llem.commands import config as config_commands
from llem.commands import db as db_commands
from llem.commands import results as results_commands
from llem.commands import schema as schema_commands
from llem.commands import study as study_commands
from llem.commands.aggregate import aggregate
from llem.commands.backends import backends
from llem.commands.env import env
from llem.commands.run import run
from llem.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    describe_os_error,
    exit_code_for,
    message_for,
)
from llem.logs import configure_logging
from llem_schema import LlemError

__all__ = ["app", "main"]

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="llem",
    help="Measure what LLM inference costs: energy, power, throughput, latency, tokens per joule.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run)
app.command("aggregate")(aggregate)
app.command("backends")(backends)
app.command("env")(env)
app.add_typer(study_commands.app, name="study")
app.add_typer(results_commands.app, name="results")
app.add_typer(db_commands.app, name="db")
app.add_typer(config_commands.app, name="config")
app.add_typer(schema_commands.app, name="schema")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"llem {package_version('llem')} (llem-schema {package_version('llem-schema')})")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show versions."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show debug logs and full tracebacks.")
    ] = False,
) -> None:
    """Measure what LLM inference costs."""
    configure_logging(verbose=verbose)


def main() -> None:
    """Console entry point: one-line errors and the documented exit codes."""
    try:
        app()
    except LlemError as error:
        logger.debug("error details", exc_info=True)
        typer.echo(f"error: {message_for(error)}", err=True)
        sys.exit(exit_code_for(error))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as error:  # a file llem could not read or write: one line, naming it
        logger.debug("error details", exc_info=True)
        typer.echo(f"error: {describe_os_error(error)}", err=True)
        sys.exit(EXIT_FAILURE)
