"""``llem backends``: the installed backends, their versions and where they come from."""

import json
from typing import Annotated

import typer

__all__ = ["backends"]


def backends(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """List the installed backends (entry-point group llem.backends), importing none."""
    from llem_harness import installed_backends
    from llem_schema.config import DEFAULT_BACKEND

    found = installed_backends()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": info.name,
                        "package": info.distribution,
                        "version": info.version,
                        "target": info.target,
                        "default": info.name == DEFAULT_BACKEND,
                    }
                    for info in found.values()
                ],
                indent=2,
            )
        )
        return
    if not found:
        typer.echo(
            "no backend is installed: install one, such as llem-backend-pytorch "
            "(pip install 'llem[pytorch]')"
        )
        return
    from rich.table import Table

    from llem.render.format import console

    table = Table("backend", "package", "version", "class")
    for info in found.values():
        name = f"{info.name} (default)" if info.name == DEFAULT_BACKEND else info.name
        table.add_row(name, info.distribution or "-", info.version or "-", info.target)
    console().print(table)
