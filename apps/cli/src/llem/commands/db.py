"""``llem db``: create, back up, restore, migrate, check, prune and compact the results store.

The store is an index: every row can be rebuilt from the result directories with
``llem results import DIR``. These commands look after the file itself.
"""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llem.commands._store import DbOption, open_store, resolve_db
from llem.render.format import size

if TYPE_CHECKING:
    from llem_store import ExperimentSummary

__all__ = ["app"]

app = typer.Typer(
    rich_markup_mode=None, help="Look after the results store file (llem.db).", no_args_is_help=True
)


@app.command("init")
def init(db: DbOption = None) -> None:
    """Create the store (or say that it exists, and its schema version)."""
    path = resolve_db(db)
    existed = path.is_file() and path.stat().st_size > 0
    with open_store(db, create=True) as store:
        version = store.schema_version
    if existed:
        typer.echo(f"{path}: already initialised, store schema {version}")
    else:
        typer.echo(f"{path}: initialised, store schema {version}")


@app.command("backup")
def backup(
    target: Annotated[Path, typer.Argument(help="The backup file (or a directory for it).")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Copy the store while it may be in use (SQLite's online backup)."""
    with open_store(db) as store:
        written = store.backup(target, overwrite=overwrite)
    typer.echo(f"backed up {resolve_db(db)} to {written}")


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Argument(help="A backup made by `llem db backup`.")],
    db: DbOption = None,
) -> None:
    """Replace the store's contents with a backup; the previous contents are kept aside."""
    from llem_store.errors import CorruptStoreError, StoreLookupError

    path = resolve_db(db)
    if not source.is_file():
        raise StoreLookupError(f"no backup at {source}")
    try:
        store = open_store(db, create=True)
    except CorruptStoreError as exc:
        # only a store SQLite cannot read is moved aside; a newer, busy or read-only one
        # is reported as it is, untouched
        aside = _move_aside(path)
        typer.echo(f"{path} could not be opened ({exc}); moved it to {aside}", err=True)
        store = open_store(db, create=True)
    with store:
        kept = store.restore(source)
    typer.echo(f"restored {path} from {source}; its previous contents are kept at {kept}")


@app.command("migrate")
def migrate(db: DbOption = None) -> None:
    """Bring the store to this llem's schema version (a copy of the old store is kept)."""
    path = resolve_db(db)
    before = _user_version(path)
    with open_store(db) as store:
        store.migrate()
        after = store.schema_version
    if before is not None and before < after:
        typer.echo(
            f"{path}: migrated from store schema {before} to {after} "
            f"(the old store is kept at {path.name}.v{before}.bak)"
        )
    else:
        typer.echo(f"{path}: up to date, store schema {after}")


@app.command("check")
def check(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Skip reading every result.json and timeseries back."),
    ] = False,
    db: DbOption = None,
) -> None:
    """Check the database, that every indexed result and its timeseries still match, and
    that nothing is recorded as running with no process running it; exit 1 on a problem."""
    from llem_persistence import StagingRepository, check_timeseries

    with open_store(db) as store:
        study_dirs = {study.study_id: study.study_dir for study in store.studies()}

        def staging_of(summary: "ExperimentSummary") -> Path | None:
            """Where a run stages: beside the store, or in its study's directory."""
            if summary.study_id is None:
                return store.results_dir
            return study_dirs.get(summary.study_id)

        def is_active(summary: "ExperimentSummary") -> bool:
            root = staging_of(summary)
            if root is None:
                return True  # a study with no directory on record: cannot be told
            staging = StagingRepository(root)
            staged_here = staging.experiment_dir(summary.experiment_id).is_dir()
            # staged nowhere llem knows (another --output): not for this check to judge
            return staging.is_running(summary.experiment_id) or not staged_here

        report = store.check(verify_files=not quick, is_active=is_active)
        roots = {s.experiment_id: staging_of(s) for s in store.running()}
        sidecars = [] if quick else store.result_dirs()
    problems = list(report.problems)
    passed_over = {*report.missing, *report.corrupt, *report.unreadable, *report.outside}
    for experiment_id, directory in sidecars:
        if experiment_id not in passed_over:
            problem = check_timeseries(directory)
            if problem is not None:
                problems.append(f"{experiment_id}: {problem}")
    problems += [
        f"{experiment_id}: recorded as running, but no process runs it (abandoned); "
        f"`llem aggregate --all --output {roots[experiment_id]} --db {resolve_db(db)}` marks it "
        "failed"
        for experiment_id in report.abandoned
    ]
    for problem in problems:
        typer.echo(problem)
    if not problems:
        typer.echo(f"ok: {report.experiments_checked} experiments checked")
        return
    advice = []
    if report.missing or report.changed:
        advice.append(
            "a result moved or changed is indexed again with `llem results import DIR`, and "
            "the rows of one deleted go with `llem db prune`"
        )
    if report.corrupt:
        advice.append(
            "a corrupt result.json cannot be re-imported: restore it from a copy, or remove "
            "it with `llem results delete ID`"
        )
    count = len(problems)
    typer.echo(
        f"{count} problem{'' if count == 1 else 's'} in {resolve_db(db)} "
        f"({report.experiments_checked} experiments checked)"
        + "".join(f"; {line}" for line in advice),
        err=True,
    )
    raise typer.Exit(1)


@app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be removed.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Remove the rows of indexed experiments whose result directory is gone."""
    with open_store(db) as store:
        gone = store.prune(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for experiment_id in gone:
        typer.echo(f"{verb} {experiment_id} (its result directory is gone)")
    typer.echo(
        f"{verb} {len(gone)} experiment{'' if len(gone) == 1 else 's'} from {resolve_db(db)}"
    )


@app.command("vacuum")
def vacuum(db: DbOption = None) -> None:
    """Compact the store file (after many results were removed or re-indexed)."""
    with open_store(db) as store:
        before, after = store.vacuum()
    typer.echo(f"vacuumed {resolve_db(db)}: {size(before)} -> {size(after)}")


def _user_version(path: Path) -> int | None:
    """The store's schema version before opening it migrates it; None if unreadable."""
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return None


def _move_aside(path: Path) -> Path:
    """Rename a damaged store (and its WAL files) out of the way; returns its new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(aside.with_name(aside.name + suffix))
    return aside
