"""``llem schema``: the result format."""

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from llem.errors import UsageError
from llem_schema import LlemError

app = typer.Typer(rich_markup_mode=None, help="The llem result format.", no_args_is_help=True)


@app.command("export")
def export(
    kind: Annotated[
        Literal["result", "raw", "config", "study", "manifest", "study-config"],
        typer.Option(
            help="Which document: result.json, a staged raw result, an experiment config, "
            "a study's study.json or manifest.json, or a study file."
        ),
    ] = "result",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the current llem result format."""
    import json

    from llem_schema import json_schema
    from llem_schema.io import atomic_write_bytes

    text = json.dumps(json_schema(kind), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        atomic_write_bytes(output, text.encode("utf-8"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None  # a wrong path
    except OSError as exc:
        raise LlemError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)


@app.command("warnings")
def warnings(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON object: code -> meaning.")
    ] = False,
) -> None:
    """List the measurement-warning codes a result can carry, and what each means."""
    import json

    from llem_schema import WARNING_CODES

    if as_json:
        typer.echo(json.dumps(dict(WARNING_CODES), indent=2))
        return
    width = max(map(len, WARNING_CODES))
    for code, meaning in WARNING_CODES.items():
        typer.echo(f"{code:<{width}}  {meaning}")
