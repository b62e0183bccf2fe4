"""``llem results``: find, show, compare, export and index results through the store.

``list`` loads only the standard library, typer, rich and ``llem_store`` (none
of llem's pydantic models, no pyarrow, no torch): it answers in well under a second over
thousands of experiments. The other commands load what they need inside their bodies.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from llem.commands._store import DbOption, open_store, refuse_to_replace, resolve_db, result_file
from llem.commands.results_list import list_experiments
from llem.commands.results_show import compare, show
from llem.commands.results_timeseries import timeseries
from llem.errors import UsageError

if TYPE_CHECKING:
    from llem_schema import ExperimentResult
    from llem_store import DeletedExperiment

__all__ = ["app"]

app = typer.Typer(
    rich_markup_mode=None,
    help="Find, show, compare, export and index results (the results store).",
    no_args_is_help=True,
)
app.command("list")(list_experiments)
app.command("show")(show)
app.command("compare")(compare)
app.command("timeseries")(timeseries)


@app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    experiment_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Experiments: ids, unique beginnings of ids, or result directories."),
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
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the file if it exists.")
    ] = False,
    requests: Annotated[
        bool,
        typer.Option(
            "--requests",
            help="One row per request (times, tokens, TTFT, E2E, TPOT, ITL, error) instead of "
            "one per experiment: csv, parquet or xlsx.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Export results to CSV, JSON, Parquet or Excel (one result in memory at a time)."""
    from llem_persistence import export as write_export
    from llem_persistence.exporters import (
        REQUEST_EXPORT_FORMATS,
        ExportError,
        ExportTargetError,
        export_requests,
        format_for_path,
    )
    from llem_store import ExperimentFilter

    if (all_results, bool(experiment_ids), study is not None).count(True) != 1:
        raise UsageError("give experiment ids, --study NAME or --all")
    refuse_to_replace(output, overwrite=overwrite)
    if file_format is None:
        try:
            file_format = format_for_path(output)
        except ExportError as exc:
            raise UsageError(str(exc).replace("pass format=", "pass --format")) from None
    bulk = all_results or study is not None
    with open_store(db) as store:
        study_id = None if study is None else store.study(study).study_id  # known, one
        if bulk:
            summaries = [
                s
                for s in store.list_experiments(
                    ExperimentFilter(statuses=("completed", "incomplete"), study=study_id),
                    sort="created",
                    descending=False,
                )
                if s.result_path is not None
            ]
            if not summaries and study is not None:
                raise UsageError(f"study {study!r} has no experiment with a result in {store.path}")
        else:
            summaries = [store.get(experiment_id) for experiment_id in experiment_ids or []]
    skipped: list[str] = []
    if bulk:  # one bad file does not block the rest: it is named, and the exit code is 1
        files = []
        for summary in summaries:
            try:
                files.append(result_file(summary))
            except UsageError as exc:
                skipped.append(str(exc))
    else:  # every one asked for, there, before writing
        files = [result_file(summary) for summary in summaries]
    if requests and file_format not in REQUEST_EXPORT_FORMATS:
        raise UsageError(
            f"--requests writes {', '.join(REQUEST_EXPORT_FORMATS)}, not {file_format}"
        )
    loaded = _load(files, skipped if bulk else None)
    try:
        if requests:
            written = export_requests(loaded, output, format=file_format)
            count = written.experiments
            what = f"{written.requests} request{'' if written.requests == 1 else 's'} of "
        else:
            count, what = write_export(loaded, output, format=file_format), ""
    except ExportTargetError as exc:  # a path that cannot be written: a mistake in the command
        raise UsageError(str(exc)) from None
    typer.echo(
        f"exported {what}{count} experiment{'' if count == 1 else 's'} to {output} ({file_format})"
    )
    for reason in skipped:
        typer.echo(f"warning: skipped {reason}", err=True)
    if skipped:
        typer.echo(f"{len(skipped)} skipped; the others were exported", err=True)
        raise typer.Exit(1)


def _load(paths: list[Path], skipped: list[str] | None) -> Iterator["ExperimentResult"]:
    """The results one at a time, so an export holds one in memory. With ``skipped``, a
    file that does not load is noted there and passed over instead of stopping the export."""
    from llem_schema import ExperimentResult, LlemError

    for path in paths:
        try:
            yield ExperimentResult.from_json(path)
        except LlemError as exc:
            if skipped is None:
                raise
            skipped.append(f"{path}: {exc}")


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
    store_logger = logging.getLogger("llem_store")
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
    if report.studies:
        linked = sum(runs for _, runs in report.studies)
        typer.echo(
            f"restored {len(report.studies)} stud{'y' if len(report.studies) == 1 else 'ies'} "
            f"from their manifests ({linked} experiment{'' if linked == 1 else 's'} linked)"
        )
    for skipped, reason in report.skipped:
        typer.echo(f"warning: skipped {skipped}: {reason}", err=True)
    if report.skipped:
        raise typer.Exit(1)


@app.command("delete")
def delete(
    experiment_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Experiments: ids, unique beginnings of ids, or result directories."),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="With --older-than: only this status (repeatable), e.g. failed."),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(help="Every experiment started this long ago or more (90d, 12h, 2w)."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="A whole study: its runs, its record and its directory.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    db: DbOption = None,
) -> None:
    """Delete experiments: their result directories and their rows. Nothing outside the
    results directory is touched; a study's runs go with the study, or when named."""
    from llem.commands._store import parse_when
    from llem_store import EXPERIMENT_STATUSES, StoreError

    chosen = [bool(experiment_ids), older_than is not None, study is not None]
    if chosen.count(True) != 1:
        raise UsageError("give experiment ids, --older-than AGE or --study NAME")
    if status and older_than is None:
        raise UsageError("--status goes with --older-than")
    unknown = sorted(set(status or ()) - set(EXPERIMENT_STATUSES))
    if unknown:
        raise UsageError(
            f"unknown status {unknown[0]!r}: choose from {', '.join(EXPERIMENT_STATUSES)}"
        )
    with open_store(db) as store:
        if study is not None:
            record = store.study(study)
            what = f"study {record.name} ({record.study_id}) and its {record.experiments} runs"
            ids: list[str] = []
        elif older_than is not None:
            cutoff = parse_when(older_than, option="--older-than")
            statuses = [s for s in EXPERIMENT_STATUSES if s in set(status or ())] or None
            ids = [s.experiment_id for s in store.retention(statuses=statuses, older_than=cutoff)]
            what = f"{len(ids)} experiment{'' if len(ids) == 1 else 's'}"
        else:
            ids = [store.get(experiment_id).experiment_id for experiment_id in experiment_ids or []]
            what = ", ".join(ids)
        if study is None and not ids:
            typer.echo("nothing to delete")
            return
        if not yes and not typer.confirm(f"delete {what} from {store.path.parent}?"):
            raise typer.Exit(1)
        if study is not None:
            for entry in store.delete_study(record.study_id):
                _deleted(entry)
            typer.echo(f"deleted {what}")
            return
        failures = 0
        for experiment_id in ids:
            try:
                _deleted(store.delete(experiment_id))
            except StoreError as exc:
                if len(ids) == 1:
                    raise
                failures += 1  # one that cannot be deleted stops no other
                typer.echo(f"warning: {experiment_id} not deleted: {exc}", err=True)
    if failures:
        typer.echo(f"{failures} of {len(ids)} not deleted; the others were", err=True)
        raise typer.Exit(1)


def _deleted(entry: "DeletedExperiment") -> None:
    if entry.kept is not None:
        typer.echo(
            f"deleted {entry.experiment_id} from the store; {entry.kept} is outside the "
            "results directory: left in place"
        )
        return
    where = f" ({entry.directory})" if entry.directory is not None else ""
    typer.echo(f"deleted {entry.experiment_id}{where}")
