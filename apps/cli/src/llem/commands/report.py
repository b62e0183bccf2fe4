"""``llem report``: a run, several runs or a study as one self-contained HTML page, and its
figures as files for a paper."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from llem.commands._store import DbOption, open_store, refuse_to_replace, result_file
from llem.errors import UsageError

if TYPE_CHECKING:
    from llem_report import Experiment, Report, Study

__all__ = ["report"]

DEFAULT_OUTPUT = Path("report.html")


def report(
    experiment_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Experiments: ids, unique beginnings of ids, or result directories."),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="A study: its directory, or its name or id in the store.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help=f"The HTML page (default: {DEFAULT_OUTPUT}, unless only --figures is given).",
        ),
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Also write each figure as a file into this folder."),
    ] = None,
    figure_format: Annotated[
        Literal["png", "svg", "pdf"] | None,
        typer.Option("--format", help="The figure files' format (default: png)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the page and figure files if they exist.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Draw power over time, energy, latency distributions and, across configurations, the
    sweep and the energy-latency Pareto front; write them with the summary table and the
    warnings into one HTML file that opens from disk with nothing fetched."""
    if experiment_ids and study is not None:
        raise UsageError("give experiment ids or --study DIR, not both")
    if not experiment_ids and study is None:
        raise UsageError("give the experiment ids to report, or --study DIR")
    if figure_format is not None and figures is None:
        raise UsageError("--format is the format of the figure files: give --figures DIR too")
    page = output if output is not None or figures is not None else DEFAULT_OUTPUT
    refuse_to_replace(page, overwrite=overwrite)
    if page is not None and page.is_dir():
        raise UsageError(
            f"{page} is a folder: name the HTML file to write, e.g. {page / 'report.html'}"
        )
    for target in (page, figures):
        if target is not None and not target.absolute().parent.is_dir():
            raise UsageError(f"{target.parent} is not a folder: create it first")
    if figures is not None and figures.exists() and not figures.is_dir():
        raise UsageError(f"{figures} is a file: --figures names a folder to write figures into")
    from llem_report import ReportError, build_report, write_figures, write_html

    source = _study(study, db) if study is not None else _experiments(experiment_ids or [], db)
    try:
        made = build_report(source)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if figures is not None:
        kind = figure_format or "png"
        _refuse_figures(made, figures, kind, overwrite=overwrite)
        written = write_figures(made, figures, kind)
        typer.echo(f"figures: {len(written)} {kind} files in {figures}", err=True)
    for note in made.notes:
        typer.echo(f"note: {note}", err=True)
    if page is not None:
        write_html(made, page)
        typer.echo(
            f"report: {page} ({page.stat().st_size / 1e6:.1f} MB, {len(made.figures)} figures)"
        )


def _experiments(ids: list[str], db: Path | None) -> "list[Experiment]":
    from llem_report import ReportError, load_experiment

    with open_store(db) as store:
        files = [result_file(store.get(experiment_id)) for experiment_id in ids]
    try:
        return [load_experiment(file) for file in files]
    except ReportError as exc:
        raise UsageError(str(exc)) from None


def _study(study: str, db: Path | None) -> "Study":
    from llem_report import ReportError, load_study
    from llem_schema import MANIFEST_FILE

    directory = Path(study)
    if not (directory / MANIFEST_FILE).is_file():
        if directory.is_dir():
            raise UsageError(f"{directory} is not a study directory: it has no {MANIFEST_FILE}")
        with open_store(db) as store:
            record = store.study(study)
        if record.study_dir is None:
            raise UsageError(
                f"the store does not know where study {study!r} is: pass its directory"
            )
        directory = record.study_dir
    try:
        return load_study(directory)
    except ReportError as exc:
        raise UsageError(str(exc)) from None


def _refuse_figures(made: "Report", folder: Path, figure_format: str, *, overwrite: bool) -> None:
    """A one-line error when a figure file would replace one already there."""
    if overwrite or not folder.is_dir():
        return
    names = {f"{n:02d}-" for n in range(1, len(made.figures) + 1)}
    taken = sorted(p.name for p in folder.glob(f"*.{figure_format}") if p.name[:3] in names)
    if taken:
        raise UsageError(
            f"{folder} already holds figures ({taken[0]}, ...); pass --overwrite to replace them"
        )
