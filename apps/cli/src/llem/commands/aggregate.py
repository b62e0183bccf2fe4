"""``llem aggregate``: recover the staged processes of a failed or interrupted run, or
(``--force``) aggregate a saved result again from the process results it holds."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llem.commands._store import db_option, resolve_db
from llem.errors import UsageError
from llem_schema import LlemError

if TYPE_CHECKING:
    from llem_harness.indexing import StoreIndex
    from llem_persistence import StagingRepository
    from llem_schema import ExperimentResult
    from llem_store import ExperimentSummary

__all__ = ["aggregate"]


def aggregate(
    experiment_id: Annotated[
        str | None, typer.Argument(help="The staged experiment (see `llem run`'s message).")
    ] = None,
    all_staged: Annotated[
        bool,
        typer.Option("--all", help="Every staged experiment (with --force: every result too)."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Aggregate an already saved result again, in place, and re-index it."
        ),
    ] = False,
    discard: Annotated[
        bool,
        typer.Option(
            "--discard",
            help="Remove the staging of a run that is not running, and mark it failed.",
        ),
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Results directory holding .staging/.")
    ] = Path("results"),
    db: Annotated[Path | None, db_option("<output>/llem.db")] = None,
) -> None:
    """Save what finished of staged runs as results marked incomplete, and index them."""
    from llem_persistence import StagingRepository

    store_path = resolve_db(db, output)
    staging = StagingRepository(output)
    if all_staged == (experiment_id is not None):
        raise UsageError("give one experiment id or --all")
    staged = staging.list_staged()
    if discard:
        if experiment_id is None or force:
            raise UsageError("--discard takes one experiment id, without --all or --force")
        _discard(staging, experiment_id, store_path)
        return
    if all_staged:
        redo = _indexed_results(store_path) if force else []
        if not staged and not redo:
            typer.echo(f"nothing staged in {staging.root}")
        failed, attempted = [], 0
        for staged_id in staged:
            if staging.is_running(staged_id):
                typer.echo(f"{staged_id}: still running; left alone")
                continue
            attempted += 1
            try:  # one run that cannot be recovered stops no other
                if staging.has_raw(staged_id):
                    _finalize(staging, staged_id, output, store_path)
                else:
                    _abandoned(staged_id, store_path)
            except (LlemError, OSError) as exc:
                typer.echo(f"{staged_id}: not aggregated: {_reason(exc)}", err=True)
                failed.append(staged_id)
        for indexed in redo:
            if indexed.experiment_id in staged:
                continue
            attempted += 1
            try:
                _reaggregate(indexed, store_path)
            except (LlemError, OSError) as exc:
                typer.echo(
                    f"{indexed.experiment_id}: not aggregated again: {_reason(exc)}", err=True
                )
                failed.append(indexed.experiment_id)
        if failed:
            total = attempted
            raise LlemError(
                f"{len(failed)} of {total} experiments could not be aggregated "
                f"({', '.join(failed)}); the others were"
            )
        return
    assert experiment_id is not None
    if experiment_id in staged:
        if staging.is_running(experiment_id):
            raise UsageError(
                f"{experiment_id} is still running; aggregate it when its run has ended"
            )
        _finalize(staging, experiment_id, output, store_path)
        return
    summary = _indexed(store_path, experiment_id)
    if summary is None or summary.result_path is None:
        raise UsageError(
            f"no staged experiment {experiment_id!r} in {staging.root} "
            f"(staged: {', '.join(staged) or 'none'})"
        )
    if not force:
        raise UsageError(
            f"{summary.experiment_id} is already aggregated ({summary.result_path}); --force "
            "aggregates it again from its process results"
        )
    _reaggregate(summary, store_path)


def _reason(exc: Exception) -> str:
    from llem.errors import describe_os_error

    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)


def _abandoned(experiment_id: str, db: Path) -> None:
    """A staged run no process runs and that saved nothing: marked failed in the store (its
    staging stays, for what it logged, until ``--discard``)."""
    from llem_store import ResultStore

    marked = False
    if db.is_file():
        with ResultStore(db, create=False) as store:
            marked = store.mark_failed(experiment_id, "no process finished")
    state = "marked failed" if marked else "nothing to save"
    typer.echo(
        f"{experiment_id}: no process finished; {state} (remove its staging with "
        f"`llem aggregate {experiment_id} --discard`)"
    )


def _discard(staging: "StagingRepository", experiment_id: str, db: Path) -> None:
    from llem_store import ResultStore

    if staging.is_running(experiment_id):
        raise UsageError(f"{experiment_id} is still running; it can be discarded when it ends")
    if staging.has_raw(experiment_id):
        raise UsageError(
            f"{experiment_id} has process results staged, not discarded: save them with "
            f"`llem aggregate {experiment_id} --output {staging.root.parent}`"
        )
    if not staging.delete(experiment_id):
        raise UsageError(f"no staged experiment {experiment_id!r} in {staging.root}")
    if db.is_file():
        with ResultStore(db, create=False) as store:
            store.mark_failed(experiment_id, "discarded before a result was saved")
    typer.echo(f"{experiment_id}: discarded its staging")


def _finalize(staging: "StagingRepository", experiment_id: str, output: Path, db: Path) -> None:
    from llem_harness.indexing import StoreIndex
    from llem_persistence import finalize_experiment
    from llem_schema import ExperimentResult

    directory = finalize_experiment(staging, experiment_id, output)
    result = ExperimentResult.from_json(directory)
    typer.echo(f"{experiment_id}: saved {directory} ({_state(result)})")
    _index(StoreIndex(db), directory)


def _reaggregate(summary: "ExperimentSummary", db: Path) -> None:
    """Aggregate the result's own process results again and replace its ``result.json``
    atomically (the timeseries sidecar stays), then re-index it."""
    from llem_harness.indexing import StoreIndex
    from llem_persistence import aggregate_results
    from llem_schema import RESULT_FILE, ExperimentResult
    from llem_schema.io import atomic_write_bytes

    assert summary.result_path is not None
    directory = summary.result_path
    result = ExperimentResult.from_json(directory)
    again = aggregate_results(
        result.process_results,
        effective_config=result.effective_config,
        expected_processes=result.aggregation.expected_processes,
        environment_snapshot=result.environment_snapshot,
        timeseries=result.timeseries,
    )
    atomic_write_bytes(directory / RESULT_FILE, again.model_dump_json(indent=2).encode())
    typer.echo(f"{summary.experiment_id}: aggregated again into {directory} ({_state(again)})")
    _index(StoreIndex(db), directory)


def _index(index: "StoreIndex", directory: Path) -> None:
    from llem.errors import reindex_advice

    failure = index.ingest(directory)
    if failure is not None:
        typer.echo(f"warning: {failure}; {reindex_advice(failure)}", err=True)


def _state(result: "ExperimentResult") -> str:
    aggregation = result.aggregation
    if aggregation.complete:
        return "complete"
    return f"incomplete, missing processes {', '.join(map(str, aggregation.missing_processes))}"


def _indexed(db: Path, experiment_id: str) -> "ExperimentSummary | None":
    """The store's entry for ``experiment_id`` (or a unique beginning); None when the store
    does not exist or does not know it."""
    from llem_store import ResultStore
    from llem_store.errors import StoreLookupError

    if not db.is_file():
        return None
    with ResultStore(db, create=False) as store:
        try:
            return store.get(experiment_id)
        except StoreLookupError:
            return None


def _indexed_results(db: Path) -> "list[ExperimentSummary]":
    from llem_store import ExperimentFilter, ResultStore

    if not db.is_file():
        return []
    with ResultStore(db, create=False) as store:
        experiments = store.list_experiments(ExperimentFilter(statuses=("completed", "incomplete")))
    return [s for s in experiments if s.result_path is not None]
