"""``llem study --dry-run``: the runs a study expands into, the points it skips, and how long
it should take from earlier runs of the same configurations in the results store."""

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from llem.study.gaps import gaps_between
from llem.study.session import LoadedStudy
from llem_schema import LlemError
from llem_schema.study_plan import format_overrides

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["format_duration", "print_dry_run", "typical_durations"]

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 30 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def typical_durations(db: Path, config_hashes: list[str]) -> dict[str, float]:
    """Median measurement window, s, of earlier completed runs per config hash; empty when
    the store does not exist or cannot be read (a dry run never creates one)."""
    from llem_persistence.store import ResultStore

    if not db.is_file():
        return {}
    try:
        with ResultStore(db, create=False) as store:
            return store.typical_durations(config_hashes)
    except (LlemError, OSError, sqlite3.Error) as exc:
        logger.warning("no run history from %s: %s", db, exc)
        return {}


def print_dry_run(loaded: LoadedStudy, *, db: Path, console: "Console") -> None:
    """Print the plan and the estimate; run nothing, create nothing."""
    from rich.table import Table

    study, plan = loaded.study, loaded.plan
    skipped = f"; {len(plan.skipped)} point(s) skipped" if plan.skipped else ""
    console.print(
        f"study {study.name}: {len(plan.points)} point(s) x {study.cycles} cycle(s) = "
        f"{len(plan.runs)} run(s), order {study.order}{skipped}"
    )
    table = Table("run", "point", "cycle", "overrides")
    for run in plan.runs:
        point = plan.point(run.point_index)
        table.add_row(
            str(run.run_index),
            str(run.point_index),
            str(run.cycle),
            format_overrides(point.overrides),
        )
    console.print(table)
    for skip in plan.skipped:
        console.print(
            f"skipped: point {skip.index} ({format_overrides(skip.overrides)}): {skip.reason}"
        )

    durations = typical_durations(db, [point.config_hash for point in plan.points])
    console.print(f"measurement window per run (median of earlier runs in {db}):")
    for point in plan.points:
        known = durations.get(point.config_hash)
        when = "no earlier run: unknown" if known is None else format_duration(known)
        console.print(f"  point {point.index} ({format_overrides(point.overrides)}): {when}")
    gaps = sum(gaps_between(study, [(run.point_index, run.cycle) for run in plan.runs]))
    windows = sum(
        durations[plan.point(run.point_index).config_hash]
        for run in plan.runs
        if plan.point(run.point_index).config_hash in durations
    )
    unknown = [point for point in plan.points if point.config_hash not in durations]
    caveat = "model loading and warmup come on top"
    if unknown:
        caveat += f", and {len(unknown)} of {len(plan.points)} point(s) have no earlier run"
    console.print(
        f"estimated time: at least {format_duration(windows + gaps)} "
        f"(measurement windows {format_duration(windows)} + gaps {format_duration(gaps)}); "
        f"{caveat}"
    )
