"""``llem db``: create, back up, restore, migrate, check and compact the results store.

The store is an index: every row can be rebuilt from the result directories with
``llem results import DIR``. These commands look after the file itself.
"""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from llem.commands._store import DbOption, open_store, resolve_db
from llem.render.format import size

__all__ = ["app"]

app = typer.Typer(help="Look after the results store file (llem.db).", no_args_is_help=True)


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
    from llem_persistence.errors import CorruptStoreError, StoreLookupError

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
        bool, typer.Option("--quick", help="Skip reading every result.json back.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Check the database and that every indexed result directory still matches; exit 1 on
    a problem."""
    with open_store(db) as store:
        report = store.check(verify_files=not quick)
    for problem in report.problems:
        typer.echo(problem)
    if not report.ok:
        count = len(report.problems)
        typer.echo(
            f"{count} problem{'' if count == 1 else 's'} in {resolve_db(db)} "
            f"({report.experiments_checked} experiments checked); a result moved, deleted or "
            "changed is indexed again with `llem results import DIR`",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"ok: {report.experiments_checked} experiments checked")


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
