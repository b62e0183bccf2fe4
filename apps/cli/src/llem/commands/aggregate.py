"""``llem aggregate``: recover the staged processes of a failed or interrupted run."""

from pathlib import Path
from typing import Annotated

import typer

from llem.errors import UsageError


def aggregate(
    experiment_id: Annotated[
        str | None, typer.Argument(help="The staged experiment (see `llem run`'s message).")
    ] = None,
    all_staged: Annotated[bool, typer.Option("--all", help="Every staged experiment.")] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Results directory holding .staging/.")
    ] = Path("results"),
) -> None:
    """Save what finished of staged runs as results marked incomplete."""
    from llem_persistence import StagingRepository, finalize_experiment
    from llem_schema import ExperimentResult

    staging = StagingRepository(output)
    if all_staged == (experiment_id is not None):
        raise UsageError("give one experiment id or --all")
    ids = staging.list_staged() if all_staged else [experiment_id or ""]
    if not all_staged and experiment_id not in staging.list_staged():
        raise UsageError(
            f"no staged experiment {experiment_id!r} in {staging.root} "
            f"(staged: {', '.join(staging.list_staged()) or 'none'})"
        )
    for staged in ids:
        directory = finalize_experiment(staging, staged, output)
        aggregation = ExperimentResult.from_json(directory).aggregation
        state = (
            "complete"
            if aggregation.complete
            else f"incomplete, missing processes {', '.join(map(str, aggregation.missing_processes))}"
        )
        typer.echo(f"{staged}: saved {directory} ({state})")
