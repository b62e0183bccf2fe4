"""What the store's queries return: plain frozen dataclasses, cheap to build by the thousand."""

import enum
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "EXPERIMENT_STATUSES",
    "ExperimentStatus",
    "ExperimentSummary",
    "ImportReport",
    "IngestOutcome",
    "IntegrityReport",
    "StudySummary",
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
        data = asdict(self)
        for key in ("created_at", "end_time"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        if data["result_path"] is not None:
            data["result_path"] = str(data["result_path"])
        return data


SUMMARY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ExperimentSummary))


@dataclass(frozen=True, slots=True)
class StudySummary:
    """A registered study and how many of its experiments the store indexes."""

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

    @property
    def indexed(self) -> int:
        return len(self.added) + len(self.updated) + len(self.unchanged)


@dataclass(frozen=True)
class IntegrityReport:
    """The outcome of :meth:`ResultStore.check`: ``ok`` when ``problems`` is empty."""

    experiments_checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def utc_text(when: datetime) -> str:
    """A time as the store keeps it: UTC, ISO 8601 with microseconds, so text order is time
    order."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")
