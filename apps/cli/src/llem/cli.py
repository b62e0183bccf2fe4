"""The ``llem`` command line.

Command modules import what they need inside their bodies, so ``llem --help`` and every
command that does not run a model start without importing torch.
"""

import difflib
import logging
import os
import sys
from importlib.metadata import version as package_version
from typing import Annotated

import typer
from typer._click import exceptions as clicks  # typer's own click: its errors, as raised
from typer._click.core import Command
from typer.core import TyperArgument, TyperGroup, TyperOption

from llem.commands import config as config_commands
from llem.commands import db as db_commands
from llem.commands import results as results_commands
from llem.commands import schema as schema_commands
from llem.commands import study as study_commands
from llem.commands.aggregate import aggregate
from llem.commands.backends import backends
from llem.commands.env import env
from llem.commands.report import report
from llem.commands.run import run
from llem.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    describe_os_error,
    exit_code_for,
    message_for,
)
from llem.logs import configure_logging
from llem_harness.errors import Terminated
from llem_schema import LlemError

__all__ = ["app", "command", "main"]

logger = logging.getLogger(__name__)

app = typer.Typer(
    rich_markup_mode=None,
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
app.command("report")(report)
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


def command() -> TyperGroup:
    """The ``llem`` command as click runs it (and as ``docs/cli.md`` is generated from), its
    help tidied: every option that takes a value shows it as a word (``-n N``,
    ``--model MODEL``, ``--precision fp32|fp16|bf16``), never as a Python type."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    _tidy(group)
    return group


def _tidy(command: Command) -> None:
    for param in command.params:
        if isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = _metavar(param)
        elif isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "value").upper()  # usage adds "..." for several
            # the name says what it is; typer would add its Python type: <list[str]>
            setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _tidy(sub)


def _metavar(option: TyperOption) -> str:
    kind = option.type_descriptor
    if kind.is_choice:
        return "|".join(str(choice) for choice in kind.choices or ())
    element = option.bare_type().removeprefix("list[").removesuffix("]")
    return {"int": "N", "float": "X"}.get(element) or (option.name or "value").upper()


def _near(error: clicks.NoSuchOption) -> clicks.UsageError:
    """``--bogus``: the options it is close to, judged without their dashes (click's own
    suggestion compares the dashes too, and proposes ``--verbose``)."""
    known = (
        []
        if error.ctx is None
        else [
            name
            for param in error.ctx.command.params
            if isinstance(param, TyperOption)
            for name in (*param.opts, *param.secondary_opts)
            if name.startswith("--")
        ]
    )
    close = difflib.get_close_matches(
        error.option_name.lstrip("-"), [name[2:] for name in known], n=3, cutoff=0.6
    )
    hint = f" (did you mean {' or '.join('--' + name for name in close)}?)" if close else ""
    return clicks.UsageError(f"no such option {error.option_name}{hint}", ctx=error.ctx)


def main() -> None:
    """Console entry point: one-line errors and the documented exit codes."""
    try:
        code = command().main(prog_name="llem", standalone_mode=False)
    except clicks.NoSuchOption as error:
        usage = _near(error)
        usage.show()
        sys.exit(usage.exit_code)
    except clicks.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except typer.Abort:  # end of input at a question (typer makes a Ctrl-C exit 130 itself)
        typer.echo("aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except BrokenPipeError:  # `llem results list | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_FAILURE)
    except LlemError as error:
        logger.debug("error details", exc_info=True)
        typer.echo(f"error: {message_for(error)}", err=True)
        sys.exit(exit_code_for(error))
    except KeyboardInterrupt as stop:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED)
    except OSError as error:  # a file llem could not read or write: one line, naming it
        logger.debug("error details", exc_info=True)
        typer.echo(f"error: {describe_os_error(error)}", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)
