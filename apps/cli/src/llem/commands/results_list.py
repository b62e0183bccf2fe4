"""``llem results list``: one page of experiments as a table, or JSON.

The hot path of the results commands: it imports none of llem's pydantic models and no
pyarrow (typer itself loads pydantic to coerce parameters). Staged runs (``--all``) are the
exception: reading their manifests loads llem_schema's models, and only then.
"""

from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from llem.commands._store import DbOption, open_store, parse_when, resolve_db
from llem.errors import UsageError
from llem.render.format import (
    MISSING,
    Column,
    Listing,
    console,
    dumps_rows,
    left_out,
    number,
    unique_beginnings,
    utc_time,
)
from llem_schema.warning_codes import WARNING_CODES
from llem_store import (
    EXPERIMENT_STATUSES,
    SORT_KEYS,
    ExperimentFilter,
    ExperimentStatus,
    ExperimentSummary,
    ResultStore,
)

__all__ = ["list_experiments"]

STAGED: Final = "staged"
"""The status shown for a staged run that the store does not know (recover it with
``llem aggregate``)."""

_SUMMARY_KEYS: Final = tuple(f.name for f in fields(ExperimentSummary))
_DROPPED_FIRST: Final = (
    "requests",
    "backend",
    "precision",
    "created",  # the id has the time too (UTC)
    "batch",
    "TTFT\np50 ms",
    "warnings",
    "energy J",
    "status",
    "output\ntok/s",
    "model",
    "tok/J",
)
"""The columns a terminal too narrow for the whole table leaves out, the least useful first
(never the id)."""


def list_experiments(
    all_statuses: Annotated[
        bool,
        typer.Option(
            "--all", help="Every status (running, failed, incomplete) and staged runs too."
        ),
    ] = False,
    model: Annotated[str | None, typer.Option(help="Part of the model name.")] = None,
    backend: Annotated[str | None, typer.Option(help="Part of the backend name.")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Only this status (repeatable): {', '.join((*EXPERIMENT_STATUSES, STAGED))}."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Started at or after: 2026-11-01, 2026-11-01T14:30, 7d, 12h. A date or time "
            "is UTC, as ids and `created` are, unless it gives its offset "
            "(2026-11-01T14:30+01:00)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Started before (a date includes that whole day); UTC, as for --since."),
    ] = None,
    min_tokens_per_j: Annotated[
        float | None, typer.Option(help="At least this many output tokens per joule.")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Only the experiments of this study (its name or id).")
    ] = None,
    warning: Annotated[
        str | None,
        typer.Option(
            help="Only experiments with a warning of this code (`llem schema warnings` lists them)."
        ),
    ] = None,
    sort: Annotated[str, typer.Option(help=f"One of: {', '.join(SORT_KEYS)}.")] = "created",
    ascending: Annotated[
        bool | None,
        typer.Option("--asc/--desc", help="Default: newest, most efficient, fastest first."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many; 0 for all.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False,
    db: DbOption = None,
) -> None:
    """List experiments, newest first (completed ones unless --all or --status)."""
    wanted = set(status or ())
    unknown = sorted(wanted - {*EXPERIMENT_STATUSES, STAGED})
    if unknown:
        raise UsageError(
            f"unknown status {unknown[0]!r}: choose from "
            f"{', '.join((*EXPERIMENT_STATUSES, STAGED))}"
        )
    if warning is not None and warning not in WARNING_CODES:
        raise UsageError(
            f"unknown warning code {warning!r}: choose from {', '.join(sorted(WARNING_CODES))}"
        )
    if sort not in SORT_KEYS:
        raise UsageError(f"unknown sort key {sort!r}: choose one of {', '.join(SORT_KEYS)}")
    for option, value in (("--limit", limit), ("--offset", offset)):
        if value < 0:
            raise UsageError(f"{option} {value}: give 0 or more")
    statuses: list[ExperimentStatus] | None
    if wanted:
        statuses = [s for s in EXPERIMENT_STATUSES if s in wanted]
    else:
        statuses = None if all_statuses else ["completed"]
    with_staged = STAGED in wanted or (all_statuses and not wanted)
    where = ExperimentFilter(
        statuses=statuses,
        model=model,
        backend=backend,
        since=parse_when(since, option="--since") if since else None,
        until=parse_when(until, option="--until", end_of_day=True) if until else None,
        min_output_tokens_per_j=min_tokens_per_j,
        study=study,
        warning=warning,
    )
    with open_store(db) as store:
        if study is not None:  # one the store does not know, or a name two studies share:
            where = replace(where, study=store.study(study).study_id)  # say so
        if statuses == []:  # only --status staged
            rows, total = [], 0
        else:
            rows = store.list_experiment_dicts(
                where,
                sort=sort,
                descending=None if ascending is None else not ascending,
                limit=limit or None,
                offset=offset,
            )
            total = store.count_experiments(where)
        staged = _staged_rows(store, where) if with_staged else []
        if as_json:
            typer.echo(dumps_rows(rows + staged))
            return
        _print_table(rows + staged, total, offset, staged, resolve_db(db), store)


def _every_id(store: ResultStore) -> list[str]:
    """The id of every experiment in the store (what a beginning of an id must tell apart)."""
    everything = ExperimentFilter(statuses=None)
    return [row["experiment_id"] for row in store.list_experiment_dicts(everything)]


def _staged_rows(store: ResultStore, where: ExperimentFilter) -> list[dict[str, Any]]:
    """Runs staged beside the store that it holds no result of (a run still going or
    killed, one whose indexing failed, one from before the store), as rows shaped like the
    store's, with status ``staged``."""
    from llem_persistence.staging import StagingRepository
    from llem_schema import LlemError

    if any(v is not None for v in (where.min_output_tokens_per_j, where.study, where.warning)):
        return []  # a staged run has no efficiency figure or warnings yet, and no study
    staging = StagingRepository(store.path.parent)
    rows = []
    for experiment_id in staging.list_staged():
        if _listed_by_the_store(store, experiment_id, where):
            continue
        row: dict[str, Any] = dict.fromkeys(_SUMMARY_KEYS)
        row |= {"experiment_id": experiment_id, "status": STAGED, "warning_count": 0}
        try:
            manifest = staging.load_manifest(experiment_id)
        except LlemError as exc:
            row["error"] = str(exc)
        else:
            config = manifest.config
            batch_size = config.backend_section().get("batch_size")  # where the backend has one
            row |= {
                "name": config.name,
                "model": config.model,
                "backend": config.backend,
                "precision": config.precision,
                "batch_size": batch_size if isinstance(batch_size, int) else None,
                "num_processes": manifest.expected_processes,
                "created_at": manifest.created.isoformat(),
                "config_hash": config.measurement_config_hash(),
            }
        if _matches(row, where):
            rows.append(row)
    return rows


def _listed_by_the_store(store: ResultStore, experiment_id: str, where: ExperimentFilter) -> bool:
    """Whether the store has a result of the staged run, or lists it under its own status
    (a run still recorded as running): then it is not listed as staged too."""
    from llem_store.errors import StoreLookupError

    try:
        summary = store.get(experiment_id)
    except StoreLookupError:
        return False
    if summary.experiment_id != experiment_id:
        return False
    listed = where.statuses is None or summary.status in where.statuses
    return summary.result_path is not None or listed


def _matches(row: dict[str, Any], where: ExperimentFilter) -> bool:
    for key, wanted in (("model", where.model), ("backend", where.backend)):
        if wanted and wanted.lower() not in str(row[key] or "").lower():
            return False
    since, until = where.since, where.until
    if row["created_at"] is None:
        return since is None and until is None
    created = datetime.fromisoformat(row["created_at"])
    if since is not None and created < since.astimezone():
        return False
    return until is None or created < until.astimezone()


def _print_table(
    rows: list[dict[str, Any]],
    total: int,
    offset: int,
    staged: list[dict[str, Any]],
    db: Path,
    store: ResultStore,
) -> None:
    """The table, then what it holds (and, on a terminal, what it left out)."""
    out = console()
    if not rows and not total:
        out.print(
            f"no matching experiments in {db} (--all also lists running, failed, incomplete "
            "and staged runs)"
        )
        return
    notes = []
    if rows:
        listing = _listing(rows, {})
        if out.is_terminal and listing.width > out.width:
            indexed = [row["experiment_id"] for row in rows if row["status"] != STAGED]
            short = unique_beginnings(indexed, _every_id(store))
            if any(short[i] != i for i in indexed):
                listing = _listing(rows, short)
                notes.append(
                    "ids are cut to a unique beginning, which `llem results show` takes "
                    "(a pipe or --json gives them whole)"
                )
        shown = listing.fit(out.width, drop=_DROPPED_FIRST) if out.is_terminal else listing
        out.print(shown)
        dropped = left_out(listing, shown)
        if dropped is not None:
            notes.append(dropped)
    shown_count = len(rows) - len(staged)
    footer = f"showing {shown_count:,} of {total:,}"
    if offset + shown_count < total:
        footer += " (--limit 0 for all)"
    if staged:
        footer += (
            f"; {len(staged)} staged run{'' if len(staged) == 1 else 's'} not indexed "
            f"(recover with `llem aggregate ID --output {db.parent}`)"
        )
    out.print(footer, markup=False)
    for note in notes:
        out.print(note, markup=False, style="dim")


def _listing(rows: list[dict[str, Any]], short: dict[str, str]) -> Listing:
    """The rows as a listing, each id as ``short`` has it (whole where it has none)."""

    def cells(key: str, text: Callable[[Any], str] = str) -> list[str]:
        return [MISSING if row[key] is None else text(row[key]) for row in rows]

    ids = [short.get(row["experiment_id"], row["experiment_id"]) for row in rows]
    columns = [
        Column("id", ids),
        Column("created", cells("created_at", lambda at: utc_time(datetime.fromisoformat(at)))),
        Column("model", cells("model")),
        Column("backend", cells("backend")),
        Column("precision", cells("precision")),
        Column("batch", cells("batch_size", number), right=True),
        Column("status", cells("status")),
        Column("requests", cells("requests", number), right=True),
        Column("output\ntok/s", cells("output_tokens_per_s", number), right=True),
        Column("energy J", cells("energy_j", number), right=True),  # what tok/J divides
        Column("tok/J", cells("output_tokens_per_j", lambda v: number(v, 2)), right=True),
        Column("TTFT\np50 ms", cells("ttft_median_ms", number), right=True),
        Column("warnings", cells("warning_count", number), right=True),
    ]
    return Listing(columns)
