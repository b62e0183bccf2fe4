"""A study on the terminal: ``llem study show STUDY_DIR`` (the per-configuration statistics of
``study.json`` and its warnings; for a study that never finished, how far its manifest got)
and ``llem study --dry-run`` (the runs, the skipped points, the estimate)."""

from pathlib import Path
from typing import TYPE_CHECKING, Final

from llem.errors import UsageError
from llem.render.format import MISSING, Column, Listing, left_out, number
from llem_harness.study.dry_run import estimate_study
from llem_harness.study.layout import StudyLayout, is_being_run
from llem_harness.study.session import LoadedStudy
from llem_schema import MetricStatistics, StudyManifest, StudyResult
from llem_schema.study_plan import format_overrides

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["format_duration", "print_dry_run", "print_study", "study_json"]

_COLUMNS: Final = (
    ("output_tokens_per_s", "tok/s"),
    ("output_tokens_per_j", "tok/J"),
    ("total_energy_j", "energy J"),
)
_STATISTICS: Final = ("mean ± std", "95% CI", "CV")
_DROPPED_FIRST: Final = (
    *(f"{name}\n95% CI" for _, name in reversed(_COLUMNS)),
    *(f"{name}\nCV" for _, name in reversed(_COLUMNS)),
    "cycles",
    *(f"{name}\nmean ± std" for _, name in reversed(_COLUMNS)),
)
"""The columns a terminal too narrow for the whole table leaves out, the least useful first
(never the point and its overrides)."""


def study_json(study_dir: Path) -> str:
    """``study.json`` as stored (migrated to the current schema version if older)."""
    layout = _layout(study_dir)
    if not layout.result_file.is_file():
        raise UsageError(f"{study_dir} has no study.json yet: {_progress(layout)}")
    return StudyResult.from_json(layout.result_file).model_dump_json(indent=2)


def print_study(study_dir: Path, console: "Console") -> None:
    """The status line, the per-configuration table and the warnings."""
    layout = _layout(study_dir)
    if layout.manifest_file.is_file():
        console.print(_progress(layout))
    if not layout.result_file.is_file():
        console.print("no study.json yet: the study has not finished or been interrupted")
        return
    result = StudyResult.from_json(layout.result_file)
    summary = result.summary
    energy = MISSING if summary.total_energy_j is None else f"{number(summary.total_energy_j)} J"
    console.print(
        f"study {result.study_id} ({result.study_name}), design {result.design_hash}: "
        f"{summary.completed} of {summary.total - summary.skipped} run(s) completed, "
        f"wall time {number(summary.wall_time_s)} s, energy {energy}"
    )
    listing = _listing(result)
    shown = listing.fit(console.width, drop=_DROPPED_FIRST) if console.is_terminal else listing
    console.print(shown)
    dropped = left_out(listing, shown)
    if dropped is not None:
        console.print(dropped, style="dim", markup=False)
    warnings = [w for c in result.configurations for w in c.warnings] + result.warnings
    if warnings:
        console.print(f"{len(warnings)} warning(s):")
        for warning in warnings:
            console.print(f"  - {warning}")


def _layout(study_dir: Path) -> StudyLayout:
    layout = StudyLayout(study_dir)
    if not (layout.manifest_file.is_file() or layout.result_file.is_file()):
        raise UsageError(
            f"{study_dir} is not a study directory (it has neither manifest.json nor study.json)"
        )
    return layout


def _progress(layout: StudyLayout) -> str:
    if not layout.manifest_file.is_file():
        return "its manifest.json is missing"
    manifest = StudyManifest.load(layout.root)
    counts = manifest.counts()
    status: str = manifest.status
    running_now = status == "running" and is_being_run(layout)
    if status == "running" and not running_now:
        status = "stopped while running (its process is gone)"
    text = (
        f"study {manifest.study_id} ({manifest.study_name}): {status}; "
        f"{counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['pending'] + counts['running']} not run"
    )
    if not running_now and manifest.remaining():
        text += f"; resume with `llem study --resume {layout.root}`"
    return text


def _listing(result: StudyResult) -> Listing:
    """A row per configuration: its point, its overrides (the point's name), and the mean and
    spread of each metric across its cycles."""
    configurations = result.configurations
    columns = [
        Column("point", [str(c.point_index) for c in configurations], right=True),
        Column("overrides", [format_overrides(c.overrides) for c in configurations], wrap=True),
        Column("cycles", [str(c.cycles_completed) for c in configurations], right=True),
    ]
    for key, name in _COLUMNS:
        cells = [_cells(c.metrics.get(key)) for c in configurations]
        for index, statistic in enumerate(_STATISTICS):
            column = [row[index] for row in cells]
            columns.append(Column(f"{name}\n{statistic}", column, right=True))
    return Listing(columns)


def _cells(stats: MetricStatistics | None) -> list[str]:
    """``12.3 ± 0.4``, ``[11.9, 12.7]``, ``3.2%``; a missing metric or spread is ``-``."""
    if stats is None:
        return [MISSING, MISSING, MISSING]
    digits = 2 if abs(stats.mean) < 100 else 1
    mean = number(stats.mean, digits)
    spread = mean if stats.std is None else f"{mean} ± {number(stats.std, digits)}"
    interval = (
        MISSING
        if stats.ci_low is None or stats.ci_high is None
        else f"[{number(stats.ci_low, digits)}, {number(stats.ci_high, digits)}]"
    )
    cv = MISSING if stats.cv is None else f"{stats.cv * 100:.1f}%"
    return [spread, interval, cv]


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 30 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def print_dry_run(loaded: LoadedStudy, *, db: Path, console: "Console") -> None:
    """Print the plan and the estimate; run nothing, create nothing."""
    study, plan = loaded.study, loaded.plan
    skipped = f"; {len(plan.skipped)} point(s) skipped" if plan.skipped else ""
    console.print(
        f"study {study.name}: {len(plan.points)} point(s) x {study.cycles} cycle(s) = "
        f"{len(plan.runs)} run(s), order {study.order}{skipped}"
    )
    runs = plan.runs
    columns = [
        Column("run", [str(run.run_index) for run in runs], right=True),
        Column("point", [str(run.point_index) for run in runs], right=True),
        Column("cycle", [str(run.cycle) for run in runs], right=True),
        Column(
            "overrides",
            [format_overrides(plan.point(run.point_index).overrides) for run in runs],
            wrap=True,
        ),
    ]
    console.print(Listing(columns))
    for skip in plan.skipped:
        console.print(
            f"skipped: point {skip.index} ({format_overrides(skip.overrides)}): {skip.reason}"
        )
    estimate = estimate_study(loaded, db=db)
    console.print(f"time per run, loading and warmup included (median of earlier runs in {db}):")
    for point in plan.points:
        run_s, window_s = estimate.run_s.get(point.index), estimate.window_s.get(point.index)
        when = (
            "no earlier run: unknown"
            if run_s is None or window_s is None
            else f"{format_duration(run_s)} (window {format_duration(window_s)})"
        )
        console.print(f"  point {point.index} ({format_overrides(point.overrides)}): {when}")
    unknown = (
        f"; {estimate.unknown_points} of {len(plan.points)} point(s) have no earlier run"
        if estimate.unknown_points
        else ""
    )
    console.print(
        f"estimated time: at least {format_duration(estimate.total_s)} "
        f"(runs {format_duration(estimate.runs_s)}, of which measurement windows "
        f"{format_duration(estimate.windows_s)}, + gaps {format_duration(estimate.gaps_s)})"
        f"{unknown}"
    )
