"""``llem config``: check and show experiment configs without running anything.

pydantic and yaml load inside the commands, so importing this module (every ``llem`` start
does) stays cheap.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from llem_schema import ConfigError

app = typer.Typer(
    rich_markup_mode=None, help="Check and show experiment configs.", no_args_is_help=True
)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override one key: --set pytorch.batch_size=8 (YAML value; repeatable).",
    ),
]


def parse_sets(assignments: list[str] | None) -> dict[str, object]:
    """``["a.b=8", "c=fp16"]`` -> ``{"a.b": 8, "c": "fp16"}``, values read as YAML scalars."""
    import yaml

    parsed: dict[str, object] = {}
    for assignment in assignments or []:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
        parsed[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return parsed


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="The experiment YAML.")],
    sets: SetOption = None,
) -> None:
    """Check a config as a run would before measuring: its keys, its prompts, its model or
    server (probed), the store. Print its measurement hash. Exit 2 naming the key when it is
    invalid, 1 when what it names cannot be reached."""
    from llem_harness import load_experiment_config
    from llem_harness.run import check_experiment

    config = load_experiment_config(file, parse_sets(sets))
    check_experiment(config)
    typer.echo(f"{file}: valid (measurement_config_hash {config.measurement_config_hash()})")


@app.command("show")
def show(
    file: Annotated[
        Path | None, typer.Argument(help="The experiment YAML; none: defaults.")
    ] = None,
    sets: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
) -> None:
    """Print the fully resolved config: defaults filled in, presets applied."""
    import yaml

    from llem_harness import load_experiment_config

    config = load_experiment_config(file, parse_sets(sets))
    data = config.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"# measurement_config_hash: {config.measurement_config_hash()}")
    typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
