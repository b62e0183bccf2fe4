"""What the store's queries return: plain frozen dataclasses, cheap to build by the thousand."""

import enum
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "EXPERIMENT_STATUSES",
    "DeletedExperiment",
    "ExperimentStatus",
    "ExperimentSummary",
    "ImportReport",
    "IngestOutcome",
    "IntegrityReport",
    "StudyRecord",
    "utc_text",
]

ExperimentStatus = Literal["running", "completed", "failed", "incomplete"]
EXPERIMENT_STATUSES: tuple[ExperimentStatus, ...] = ("running", "completed", "failed", "incomplete")


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    """One indexed experiment: identity, status, configuration and key metrics.

    Metrics are ``None`` where the result has none (no energy measured, a run still running or
    failed). ``result_path`` is absolute; ``None`` until a result directory exists.
    """

    experiment_id: str
    name: str | None
    status: ExperimentStatus
    model: str
    backend: str
    backend_version: str | None
    precision: str | None
    batch_size: int | None
    num_processes: int | None
    created_at: datetime
    end_time: datetime | None
    duration_s: float | None
    config_hash: str
    schema_version: str | None
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    total_energy_j: float | None
    energy_j: float | None
    """The energy of ``energy_scope``: what the efficiency figures divide, J."""
    energy_scope: str | None
    """``gpu``, ``cpu`` (a run without a GPU) or ``total`` (a result of schema 1.2 that added
    both); ``None`` without energy, or indexed before the store knew scopes."""
    gpu_energy_j: float | None
    cpu_energy_j: float | None
    energy_adjusted_j: float | None
    baseline_power_w: float | None
    output_tokens_per_s: float | None
    output_tokens_per_j: float | None
    energy_per_output_token_j: float | None
    output_tokens_per_j_adjusted: float | None
    ttft_median_ms: float | None
    ttft_p95_ms: float | None
    itl_median_ms: float | None
    itl_p95_ms: float | None
    tpot_median_ms: float | None
    e2e_median_ms: float | None
    e2e_p95_ms: float | None
    peak_memory_mb: float | None
    warning_count: int
    error: str | None
    study_id: str | None
    result_path: Path | None

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: datetimes as ISO 8601 strings, the path as a string."""
        # Every field holds an immutable value, so a plain dict is what ``asdict`` would give
        # without its deep copies (ten times the cost, for ``--json`` over a whole store).
        data = {name: getattr(self, name) for name in SUMMARY_FIELDS}
        data["created_at"] = self.created_at.isoformat()
        if self.end_time is not None:
            data["end_time"] = self.end_time.isoformat()
        if self.result_path is not None:
            data["result_path"] = str(self.result_path)
        return data


SUMMARY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ExperimentSummary))


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """A study the store knows, and how many of its experiments it indexes."""

    study_id: str
    name: str
    design_hash: str | None
    created_at: datetime
    study_dir: Path | None
    experiments: int
    with_results: int


class IngestOutcome(enum.Enum):
    """What :meth:`ResultStore.ingest` did with a result directory."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass
class ImportReport:
    """What :meth:`ResultStore.import_tree` found below a root."""

    added: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Directories not indexed, each with the reason (corrupt, a duplicate id, ...)."""
    studies: list[tuple[Path, int]] = field(default_factory=list)
    """Study directories whose manifest was read, each with how many of its runs it linked."""

    @property
    def indexed(self) -> int:
        return len(self.added) + len(self.updated) + len(self.unchanged)


@dataclass(frozen=True)
class IntegrityReport:
    """The outcome of :meth:`ResultStore.check`: ``ok`` when nothing was found. Each list
    holds experiment ids; ``problems`` says every problem in a line."""

    experiments_checked: int
    problems: list[str]
    missing: list[str] = field(default_factory=list)
    """``result.json`` gone (moved or deleted): re-import where it went, or prune."""
    changed: list[str] = field(default_factory=list)
    """``result.json`` changed since it was indexed, and still loads: re-import it."""
    corrupt: list[str] = field(default_factory=list)
    """``result.json`` changed and no longer loads: re-importing cannot help."""
    unreadable: list[str] = field(default_factory=list)
    """``result.json`` there, perhaps, but not readable by this user."""
    outside: list[str] = field(default_factory=list)
    """Indexed paths that leave the store's directory (``..``)."""
    abandoned: list[str] = field(default_factory=list)
    """Recorded as running, with no process running them any more."""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.abandoned


@dataclass(frozen=True, slots=True)
class DeletedExperiment:
    """An experiment :meth:`ResultStore.delete` removed, the directory removed with it
    (``None`` when none was), and a directory it left in place because it lies outside the
    store's directory."""

    experiment_id: str
    directory: Path | None
    kept: Path | None = None


def utc_text(when: datetime) -> str:
    """A time as the store keeps it: UTC, ISO 8601 with microseconds, so text order is time
    order."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")
