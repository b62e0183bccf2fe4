"""What a study found: :class:`StudyResult` (``study.json``), built by :func:`summarize_study`.

Per configuration (a point of the study), the statistics of the key metrics across its
completed cycles (:class:`~llem_schema.MetricStatistics`), and warnings where the cycles
disagree more than :attr:`~llem_schema.StudyConfig.cv_warning_threshold` allows; for the whole
study, how many runs completed, failed, were skipped or still pend, the wall time and the
energy.
"""

import hashlib
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import Final, Self

from pydantic import (
    AwareDatetime,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    field_validator,
    model_validator,
)

from llem_schema._base import FrozenModel
from llem_schema.ids import ExperimentId, validate_study_name
from llem_schema.io import load_document_file, write_document
from llem_schema.result import ExperimentResult
from llem_schema.statistics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    MetricStatistics,
    cycle_statistics,
)
from llem_schema.study_manifest import ManifestEntry, StudyManifest
from llem_schema.study_plan import format_overrides
from llem_schema.versions import SCHEMA_VERSION, STUDY_MIGRATIONS, parse_version

__all__ = [
    "STUDY_METRICS",
    "STUDY_RESULT_FILE",
    "ConfigurationSummary",
    "StudyResult",
    "StudySummary",
    "summarize_study",
]

STUDY_RESULT_FILE: Final = "study.json"

STUDY_METRICS: Final[Mapping[str, Callable[[ExperimentResult], float | None]]] = {
    "output_tokens_per_s": lambda r: r.output_tokens_per_s,
    "total_energy_j": lambda r: r.total_energy_j,
    "energy_j": lambda r: r.scope_energy_j() if r.energy_scope else r.total_energy_j,
    "energy_adjusted_j": lambda r: r.energy_adjusted_j,
    "output_tokens_per_j": lambda r: r.efficiency.output_tokens_per_j,
    "energy_per_output_token_j": lambda r: r.efficiency.energy_per_output_token_j,
    "ttft_median_ms": lambda r: r.latency.ttft.median_ms if r.latency.ttft else None,
    "itl_median_ms": lambda r: r.latency.itl.median_ms if r.latency.itl else None,
    "e2e_median_ms": lambda r: r.latency.e2e.median_ms if r.latency.e2e else None,
    "duration_s": lambda r: r.duration_s,
}
"""The metrics summarised across cycles, each read from an :class:`ExperimentResult`.
``energy_j`` is the energy the efficiency figures divide (the GPUs' where any was metered,
see ``ExperimentResult.energy_scope``); ``total_energy_j`` adds host-wide CPU energy."""

_HEX16: Final = r"^[0-9a-f]{16}$"


class StudySummary(FrozenModel):
    """How far a study got, over all its manifest entries."""

    total: NonNegativeInt = Field(description="Manifest entries: every run plus skipped points.")
    completed: NonNegativeInt = Field(description="Runs that completed.")
    failed: NonNegativeInt = Field(description="Runs that failed (crash, timeout, error).")
    skipped: NonNegativeInt = Field(description="Points skipped (invalid or duplicate).")
    pending: NonNegativeInt = Field(
        description="Runs that did not finish: never started, or running when interrupted."
    )
    wall_time_s: NonNegativeFloat = Field(
        description=(
            "From the study's creation to finished_at, s, the gaps between runs included and "
            "the time it spent stopped between an interruption and its resume left out (up to "
            "schema 1.3 that time was included)."
        )
    )
    total_energy_j: NonNegativeFloat | None = Field(
        description=(
            "Energy of every completed run summed, J; None if any completed run has no energy "
            "figure or none completed."
        )
    )

    @model_validator(mode="after")
    def _adds_up(self) -> Self:
        if self.completed + self.failed + self.skipped + self.pending != self.total:
            raise ValueError("completed + failed + skipped + pending must equal total")
        return self


class ConfigurationSummary(FrozenModel):
    """One point of the study across its completed cycles."""

    point_index: NonNegativeInt = Field(description="0-based index of the point in the study.")
    config_hash: str = Field(
        pattern=_HEX16, description="measurement_config_hash of the point (16 hex digits)."
    )
    overrides: dict[str, JsonValue] = Field(
        description="Dotted key -> value that defines the point."
    )
    cycles_completed: NonNegativeInt = Field(description="Cycles of this point that completed.")
    experiment_ids: list[ExperimentId] = Field(
        description="Experiment id of each completed cycle, in run order."
    )
    metrics: dict[str, MetricStatistics] = Field(
        description=(
            "Metric name (its unit in the suffix) -> statistics across the completed cycles; "
            "a metric missing from any cycle is left out."
        )
    )
    warnings: list[str] = Field(
        default_factory=list, description="Each: what was detected and what to do about it."
    )

    @model_validator(mode="after")
    def _one_id_per_cycle(self) -> Self:
        if len(self.experiment_ids) != self.cycles_completed:
            raise ValueError("experiment_ids must hold one id per completed cycle")
        if any(stats.n > self.cycles_completed for stats in self.metrics.values()):
            raise ValueError("a metric cannot have more values than completed cycles")
        return self


class StudyResult(FrozenModel):
    """A study's summary and per-configuration statistics across cycles (``study.json``)."""

    schema_version: str = Field(
        default=SCHEMA_VERSION, description="llem schema version, 'major.minor'."
    )
    study_id: ExperimentId = Field(description="Unique id of the study run (its directory).")
    study_name: str = Field(description="StudyConfig.name.")
    design_hash: str = Field(
        pattern=_HEX16, description="StudyPlan.design_hash: which points, cycles and order."
    )
    created_at: AwareDatetime = Field(description="When the study started.")
    finished_at: AwareDatetime = Field(description="When this summary was made.")
    cv_warning_threshold: PositiveFloat = Field(
        description="CV (fraction) above which a configuration warns that its cycles disagree."
    )
    summary: StudySummary = Field(description="Counts, wall time and energy.")
    configurations: list[ConfigurationSummary] = Field(
        description="Every point that was planned to run, by point index."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            "Study-wide findings (failures, interruptions, skipped points); each says what to "
            "do. Per-configuration ones are in each configuration."
        ),
    )

    @field_validator("study_name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return validate_study_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        parse_version(self.schema_version)
        if self.finished_at < self.created_at:
            raise ValueError("finished_at precedes created_at")
        return self

    def save(self, study_dir: str | PathLike[str]) -> Path:
        """Write ``study_dir/study.json`` atomically (creating ``study_dir``); return its path."""
        return write_document(self, study_dir, STUDY_RESULT_FILE)

    @classmethod
    def from_json(cls, path: str | PathLike[str]) -> Self:
        """Load ``study.json`` from a study directory or the file itself.

        Older schema versions are migrated. A missing or corrupt file, a file that is not a
        study result, or a newer major schema version raises a one-line
        :class:`~llem_schema.ResultFormatError`.
        """
        return load_document_file(
            cls, path, STUDY_RESULT_FILE, kind="study result", migrations=STUDY_MIGRATIONS
        )


def summarize_study(
    manifest: StudyManifest,
    results: Mapping[int, ExperimentResult],
    *,
    cv_warning_threshold: float,
    finished_at: datetime,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> StudyResult:
    """Summarise a study from its manifest and the results of its completed runs.

    ``results`` maps run index -> the loaded result of that (completed) run. Per point, each
    metric of :data:`STUDY_METRICS` gets :func:`~llem_schema.cycle_statistics` across the
    completed cycles (left out if any cycle lacks it), with a bootstrap seed derived from the
    design hash and the point index, so the summary is reproducible. A completed run with no
    result given, or whose result measured another configuration, is left out with a warning.
    """
    by_run = {e.run_index: e for e in manifest.entries}
    for run_index in results:
        entry = by_run.get(run_index)
        if entry is None or entry.status != "completed":
            raise ValueError(f"results[{run_index}]: run {run_index} is not a completed run")

    warnings: list[str] = []
    used: dict[int, ExperimentResult] = {}
    for entry in manifest.entries:
        if entry.status != "completed":
            continue
        result = results.get(entry.run_index)
        where = f"run {entry.run_index} (point {entry.point_index}, cycle {entry.cycle})"
        if result is None:
            warnings.append(
                f"{where}: completed, but its result ({entry.result_path}) was not loaded; it is "
                "left out of the statistics: check that the result directory is intact"
            )
        elif result.measurement_config_hash != entry.config_hash:
            warnings.append(
                f"{where}: its result {result.experiment_id} measured configuration "
                f"{result.measurement_config_hash}, not the point's {entry.config_hash}; it is "
                "left out of the statistics: check the manifest's result_path"
            )
        else:
            used[entry.run_index] = result

    planned: dict[int, list[ManifestEntry]] = {}
    hashes: dict[int, str] = {}
    for entry in manifest.entries:
        if entry.cycle is not None and entry.config_hash is not None:
            planned.setdefault(entry.point_index, []).append(entry)
            hashes[entry.point_index] = entry.config_hash
    configurations = [
        _configuration(
            point_index,
            hashes[point_index],
            entries,
            used,
            design_hash=manifest.design_hash,
            threshold=cv_warning_threshold,
            resamples=resamples,
            confidence=confidence,
        )
        for point_index, entries in sorted(planned.items())
    ]

    counts = manifest.counts()
    pending = counts["pending"] + counts["running"]
    total = len(manifest.entries)
    warnings.extend(_study_warnings(manifest, planned, pending))
    energies = [r.total_energy_j for r in used.values()]
    total_energy = (
        math.fsum(e for e in energies if e is not None)
        if energies and None not in energies
        else None
    )
    return StudyResult(
        study_id=manifest.study_id,
        study_name=manifest.study_name,
        design_hash=manifest.design_hash,
        created_at=manifest.created_at,
        finished_at=finished_at,
        cv_warning_threshold=cv_warning_threshold,
        summary=StudySummary(
            total=total,
            completed=counts["completed"],
            failed=counts["failed"],
            skipped=counts["skipped"],
            pending=pending,
            wall_time_s=max(
                0.0, (finished_at - manifest.created_at).total_seconds() - manifest.paused_s
            ),
            total_energy_j=total_energy,
        ),
        configurations=configurations,
        warnings=warnings,
    )


def point_seed(design_hash: str, point_index: int) -> int:
    """The bootstrap seed of a point: 64 bits of SHA-256 over the design hash and the index."""
    digest = hashlib.sha256(f"{design_hash}:{point_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _configuration(
    point_index: int,
    config_hash: str,
    entries: list[ManifestEntry],
    used: Mapping[int, ExperimentResult],
    *,
    design_hash: str,
    threshold: float,
    resamples: int,
    confidence: float,
) -> ConfigurationSummary:
    first = entries[0]
    label = f"point {point_index} ({format_overrides(first.overrides)})"
    completed = [e for e in entries if e.status == "completed"]
    results = [used[e.run_index] for e in completed if e.run_index in used]
    seed = point_seed(design_hash, point_index)
    metrics: dict[str, MetricStatistics] = {}
    warnings: list[str] = []
    for name, read in STUDY_METRICS.items():
        values = [read(result) for result in results]
        if not values or any(v is None for v in values):
            continue
        stats = cycle_statistics(
            [v for v in values if v is not None],
            seed=seed,
            resamples=resamples,
            confidence=confidence,
        )
        metrics[name] = stats
        if stats.cv is not None and stats.cv > threshold:
            warnings.append(
                f"{label}: {name} varies {stats.cv * 100:.1f}% across {stats.n} cycles "
                f"(CV above {threshold * 100:g}%): cycles ran under different conditions; "
                "lengthen the gaps between experiments or add cycles"
            )
    missing = len(entries) - len(completed)
    if missing:
        failed = sum(e.status == "failed" for e in entries)
        why = ", ".join(
            part
            for part in (
                f"{failed} failed" if failed else "",
                f"{missing - failed} did not run" if missing - failed else "",
            )
            if part
        )
        warnings.append(
            f"{label}: {len(completed)} of {len(entries)} cycles completed ({why}); "
            + (
                "its statistics cover fewer cycles: resume the study to run the rest"
                if completed
                else "no statistics: see the errors in manifest.json and resume the study"
            )
        )
    return ConfigurationSummary(
        point_index=point_index,
        config_hash=config_hash,
        overrides=first.overrides,
        cycles_completed=len(completed),
        experiment_ids=[e.experiment_id for e in completed if e.experiment_id is not None],
        metrics=metrics,
        warnings=warnings,
    )


_CALIBRATED_CYCLES = 10
"""Cycles from which the percentile bootstrap's 95% interval comes close to 95% coverage."""


def _study_warnings(
    manifest: StudyManifest, planned: Mapping[int, list[ManifestEntry]], pending: int
) -> list[str]:
    warnings: list[str] = []
    runs = sum(len(entries) for entries in planned.values())
    failed = manifest.counts()["failed"]
    if failed:
        warnings.append(
            f"{failed} of {runs} runs failed: each error is in manifest.json; fix the cause and "
            "resume the study to rerun them"
        )
    if pending:
        warnings.append(
            f"{pending} of {runs} runs did not finish (the study was interrupted): resume the "
            "study to run them"
        )
    for entry in manifest.entries:
        if entry.cycle is None or entry.config_hash is None:
            warnings.append(
                f"point {entry.point_index} ({format_overrides(entry.overrides)}) was skipped: "
                f"{entry.error}"
            )
    cycles = max((len(entries) for entries in planned.values()), default=0)
    if planned and cycles < 2:
        warnings.append(
            "each configuration ran one cycle: there is no spread or confidence interval to "
            "judge repeatability; set cycles: 3 or more"
        )
    elif planned and cycles < _CALIBRATED_CYCLES:
        warnings.append(
            f"{cycles} cycles per configuration: a percentile bootstrap interval covers the "
            "mean less often than its nominal level (about half the time at 2 cycles, three "
            "times in four at 3); read ci_low..ci_high as the spread of the cycles, or set "
            f"cycles: {_CALIBRATED_CYCLES} or more for an interval that holds its level"
        )
    return warnings
