"""``llem results``: find, show, compare, export and index results through the store.

``list`` loads only the standard library, typer, rich and ``llem_persistence.store`` (none
of llem's pydantic models, no pyarrow, no torch): it answers in well under a second over
thousands of experiments. The other commands load what they need inside their bodies.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from llem.commands._store import DbOption, open_store, resolve_db, result_file
from llem.commands.results_list import list_experiments
from llem.commands.results_show import compare, show
from llem.errors import UsageError

if TYPE_CHECKING:
    from llem_schema import ExperimentResult

__all__ = ["app"]

app = typer.Typer(
    help="Find, show, compare, export and index results (the results store).",
    no_args_is_help=True,
)
app.command("list")(list_experiments)
app.command("show")(show)
app.command("compare")(compare)


@app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    experiment_ids: Annotated[
        list[str] | None, typer.Argument(help="Experiments (ids or unique beginnings).")
    ] = None,
    all_results: Annotated[
        bool, typer.Option("--all", help="Every experiment with a result (incomplete too).")
    ] = False,
    study: Annotated[
        str | None,
        typer.Option(help="Every experiment of this study (its name or id) with a result."),
    ] = None,
    file_format: Annotated[
        Literal["csv", "json", "parquet", "xlsx"] | None,
        typer.Option("--format", "-f", help="Default: from the file's suffix."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Export results to CSV, JSON, Parquet or Excel (one result in memory at a time)."""
    from llem_persistence import export as write_export
    from llem_persistence.exporters import ExportError, format_for_path

    if (all_results, bool(experiment_ids), study is not None).count(True) != 1:
        raise UsageError("give experiment ids, --study NAME or --all")
    if file_format is None:
        try:
            file_format = format_for_path(output)
        except ExportError as exc:
            raise UsageError(str(exc).replace("pass format=", "pass --format")) from None
    with open_store(db) as store:
        if all_results or study is not None:
            summaries = [
                s
                for s in store.list_experiments(
                    statuses=("completed", "incomplete"),
                    study=study,
                    sort="created",
                    descending=False,
                )
                if s.result_path is not None
            ]
            if not summaries and study is not None:
                raise UsageError(f"study {study!r} has no experiment with a result in {store.path}")
        else:
            summaries = [store.get(experiment_id) for experiment_id in experiment_ids or []]
    files = [result_file(summary) for summary in summaries]  # all there, before writing
    count = write_export(_load(files), output, format=file_format)
    typer.echo(
        f"exported {count} experiment{'' if count == 1 else 's'} to {output} ({file_format})"
    )


def _load(paths: list[Path]) -> Iterator["ExperimentResult"]:
    """The results one at a time, so an export holds one in memory."""
    from llem_schema import ExperimentResult

    for path in paths:
        yield ExperimentResult.from_json(path)


@app.command("import")
def import_results(
    directory: Annotated[Path, typer.Argument(help="A results directory (searched recursively).")],
    db: DbOption = None,
) -> None:
    """Index every result directory below DIRECTORY (a new store is created if needed)."""
    import logging

    from llem.render.format import console

    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    err = console(stderr=True)
    store_logger = logging.getLogger("llem_persistence.store")
    level = store_logger.level
    store_logger.setLevel(logging.ERROR)  # skips are listed below, once
    try:
        with open_store(db, create=True) as store:
            if err.is_terminal:
                from rich.progress import Progress

                with Progress(console=err, transient=True) as progress:
                    task = progress.add_task("indexing", total=None)

                    def advance(_: Path, done: int, total: int) -> None:
                        progress.update(task, completed=done, total=total)

                    report = store.import_tree(directory, on_result=advance)
            else:
                report = store.import_tree(directory)
    finally:
        store_logger.setLevel(level)
    typer.echo(
        f"indexed {report.indexed} (added {len(report.added)}, updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}) into {resolve_db(db)}"
    )
    for skipped, reason in report.skipped:
        typer.echo(f"warning: skipped {skipped}: {reason}", err=True)
    if report.skipped and not report.indexed:
        raise typer.Exit(1)
