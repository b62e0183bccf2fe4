"""The state of a study on disk: :class:`StudyManifest` (``manifest.json`` in a study directory).

The runner rewrites the manifest atomically on every status change, so after a crash or Ctrl-C
it still says which runs completed (and where their results are), which failed and why, and
what remains. Every change returns a new, validated manifest (:meth:`StudyManifest.with_entry`,
:meth:`StudyManifest.with_status`); :meth:`StudyManifest.save` writes it.
"""

from datetime import UTC, datetime
from os import PathLike
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Final, Literal, Self, get_args

from pydantic import (
    AwareDatetime,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    field_validator,
    model_validator,
)

from llem_schema._base import FrozenModel
from llem_schema.ids import ExperimentId, validate_study_name
from llem_schema.io import load_document_file, write_document
from llem_schema.study_config import SlurmExecutorConfig
from llem_schema.study_plan import StudyPlan
from llem_schema.versions import MANIFEST_MIGRATIONS, SCHEMA_VERSION, parse_version

__all__ = [
    "ENTRY_STATUSES",
    "MANIFEST_FILE",
    "EntryStatus",
    "ManifestEntry",
    "StudyManifest",
    "StudyStatus",
    "validate_result_path",
]

MANIFEST_FILE: Final = "manifest.json"

StudyStatus = Literal["running", "interrupted", "completed", "failed"]
EntryStatus = Literal["pending", "running", "completed", "failed", "skipped"]
ENTRY_STATUSES: Final[tuple[EntryStatus, ...]] = get_args(EntryStatus)

_HEX16: Final = r"^[0-9a-f]{16}$"
_SHA256: Final = r"^[0-9a-f]{64}$"


def validate_result_path(value: str) -> str:
    """A relative path that stays inside the study directory, with ``/`` separators.

    Refused: empty, absolute (``/x``, ``C:\\x``, ``\\\\host\\x``), any ``..`` or ``.``
    component, backslashes, and NUL.
    """
    if not value or "\0" in value or "\\" in value:
        raise ValueError(f"result_path must be a relative path with '/' separators, got {value!r}")
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        raise ValueError(f"result_path must be relative to the study directory, got {value!r}")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(
            f"result_path must stay inside the study directory (no '..', '.' or empty "
            f"components), got {value!r}"
        )
    return value


class ManifestEntry(FrozenModel):
    """One run of a study (a point in a cycle), or one skipped point."""

    run_index: NonNegativeInt = Field(description="0-based position in the run order.")
    point_index: NonNegativeInt = Field(description="0-based index of the point in the study.")
    cycle: NonNegativeInt | None = Field(
        description="0-based cycle; None for a point that is skipped (it runs in no cycle)."
    )
    config_hash: str | None = Field(
        pattern=_HEX16,
        description="measurement_config_hash of the point; None for an invalid configuration.",
    )
    overrides: dict[str, JsonValue] = Field(
        description="Dotted key -> value that defines the point."
    )
    status: EntryStatus = Field(
        default="pending", description="pending, running, completed, failed or skipped."
    )
    started_at: AwareDatetime | None = Field(default=None, description="When the run started.")
    finished_at: AwareDatetime | None = Field(
        default=None, description="When the run completed or failed."
    )
    error: str | None = Field(
        default=None, description="Why the run failed or the point was skipped (one line)."
    )
    experiment_id: ExperimentId | None = Field(
        default=None, description="Experiment id of the run's result."
    )
    result_path: str | None = Field(
        default=None,
        description="Result directory, relative to the study directory ('/' separators).",
    )
    slurm_job_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]+(_[0-9]+)?$",
        description=(
            "The Slurm job of the run's latest attempt (an array task: 1234_5); None when it "
            "ran on this machine. Added in schema 1.5."
        ),
    )

    @field_validator("result_path")
    @classmethod
    def _inside_study(cls, value: str | None) -> str | None:
        return None if value is None else validate_result_path(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.status != "skipped" and (self.cycle is None or self.config_hash is None):
            raise ValueError("only a skipped entry may lack a cycle or a config_hash")
        if self.status in ("failed", "skipped") and not self.error:
            raise ValueError(f"a {self.status} entry needs an error saying why")
        if self.status == "completed" and (self.result_path is None or self.experiment_id is None):
            raise ValueError("a completed entry needs its experiment_id and result_path")
        if (
            self.started_at is not None
            and self.finished_at is not None
            and self.finished_at < self.started_at
        ):
            raise ValueError("finished_at precedes started_at")
        return self

    def result_dir(self, study_dir: str | PathLike[str]) -> Path | None:
        """The run's result directory under ``study_dir``, or ``None`` if it has none yet."""
        return None if self.result_path is None else Path(study_dir) / self.result_path


class StudyManifest(FrozenModel):
    """What a study is and how far it got (``manifest.json``)."""

    schema_version: str = Field(
        default=SCHEMA_VERSION, description="llem schema version, 'major.minor'."
    )
    study_id: ExperimentId = Field(description="Unique id of this study run (its directory).")
    study_name: str = Field(description="StudyConfig.name.")
    design_hash: str = Field(
        pattern=_HEX16, description="StudyPlan.design_hash: which points, cycles and order."
    )
    study_file_sha256: str | None = Field(
        default=None,
        pattern=_SHA256,
        description=(
            "SHA-256 (hex) of the study file's bytes; a resume refuses a changed file. None "
            "when the study did not come from a file."
        ),
    )
    status: StudyStatus = Field(
        default="running", description="running, interrupted, completed or failed."
    )
    created_at: AwareDatetime = Field(description="When the study started.")
    updated_at: AwareDatetime = Field(description="When the manifest last changed.")
    executor: SlurmExecutorConfig | None = Field(
        default=None,
        description=(
            "Where the study's runs run, as it was started or last resumed (command-line "
            "settings included); None: on this machine (and before schema 1.5)."
        ),
    )
    paused_s: NonNegativeFloat = Field(
        default=0.0,
        description=(
            "Time the study spent stopped, s: from the last change before each interruption "
            "(or crash) to the resume that went on with it. Added in schema 1.4."
        ),
    )
    entries: list[ManifestEntry] = Field(
        description="Every run in run order (entries[i].run_index == i), then skipped points."
    )

    @field_validator("study_name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return validate_study_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        parse_version(self.schema_version)
        if self.updated_at < self.created_at:
            raise ValueError("updated_at precedes created_at")
        if [e.run_index for e in self.entries] != list(range(len(self.entries))):
            raise ValueError("entries must be numbered by run_index 0, 1, 2, ... in order")
        runs: set[tuple[int, int | None]] = set()
        points: dict[int, tuple[str | None, dict[str, JsonValue]]] = {}
        for entry in self.entries:
            run = (entry.point_index, entry.cycle)
            if run in runs:
                raise ValueError(
                    f"point {entry.point_index} appears twice in cycle {entry.cycle} "
                    f"(run {entry.run_index})"
                )
            runs.add(run)
            point = (entry.config_hash, entry.overrides)
            if points.setdefault(entry.point_index, point) != point:
                raise ValueError(
                    f"run {entry.run_index}: point {entry.point_index} has another config_hash "
                    "or overrides than in an earlier entry"
                )
        if self.status == "completed" and any(
            e.status in ("pending", "running") for e in self.entries
        ):
            raise ValueError("a completed study has no pending or running entry")
        return self

    @classmethod
    def new(
        cls,
        plan: StudyPlan,
        *,
        study_id: str,
        study_name: str,
        study_file_sha256: str | None = None,
        created_at: datetime | None = None,
    ) -> Self:
        """A running manifest with every run of ``plan`` pending, then its skipped points."""
        now = created_at or datetime.now(UTC)
        entries = [
            ManifestEntry(
                run_index=run.run_index,
                point_index=run.point_index,
                cycle=run.cycle,
                config_hash=plan.point(run.point_index).config_hash,
                overrides=plan.point(run.point_index).overrides,
            )
            for run in plan.runs
        ]
        entries.extend(
            ManifestEntry(
                run_index=len(plan.runs) + offset,
                point_index=point.index,
                cycle=None,
                config_hash=point.config_hash,
                overrides=point.overrides,
                status="skipped",
                error=point.reason,
            )
            for offset, point in enumerate(plan.skipped)
        )
        return cls(
            study_id=study_id,
            study_name=study_name,
            design_hash=plan.design_hash,
            study_file_sha256=study_file_sha256,
            created_at=now,
            updated_at=now,
            entries=entries,
        )

    def entry(self, run_index: int) -> ManifestEntry:
        """The entry of run ``run_index``."""
        if not 0 <= run_index < len(self.entries):
            raise KeyError(f"no run {run_index} in this study ({len(self.entries)} entries)")
        return self.entries[run_index]

    def with_entry(
        self, run_index: int, /, *, updated_at: datetime | None = None, **changes: Any
    ) -> Self:
        """A copy with run ``run_index``'s entry changed (validated) and ``updated_at`` set.

        ``manifest.with_entry(3, status="completed", finished_at=now, experiment_id=...,
        result_path=...)``. An unknown field or an inconsistent entry is a
        ``pydantic.ValidationError``; the entry's identity (run, point, cycle) cannot change.
        """
        fixed = {"run_index", "point_index", "cycle", "config_hash", "overrides"} & set(changes)
        if fixed:
            raise ValueError(f"an entry's {', '.join(sorted(fixed))} cannot change")
        current = self.entry(run_index)
        entry = ManifestEntry.model_validate(current.model_dump() | changes)
        entries = list(self.entries)
        entries[run_index] = entry
        return self._changed(updated_at, entries=entries)

    def resumed(self, *, stopped_at: datetime, at: datetime | None = None) -> Self:
        """A copy running again, the time from ``stopped_at`` (its last change before it
        stopped) to ``at`` (now) added to :attr:`paused_s`."""
        now = at or datetime.now(UTC)
        pause = max(0.0, (now - stopped_at).total_seconds())
        return self._changed(now, status="running", paused_s=self.paused_s + pause)

    def with_status(self, status: StudyStatus, *, updated_at: datetime | None = None) -> Self:
        """A copy with the study's ``status`` and ``updated_at`` set (validated)."""
        return self._changed(updated_at, status=status)

    def _changed(self, updated_at: datetime | None, **changes: object) -> Self:
        document = self.model_dump() | changes
        document["updated_at"] = updated_at or datetime.now(UTC)
        return self.model_validate(document)

    def counts(self) -> dict[EntryStatus, int]:
        """How many entries have each status (every status, zeros included)."""
        counts = dict.fromkeys(ENTRY_STATUSES, 0)
        for entry in self.entries:
            counts[entry.status] += 1
        return counts

    def remaining(self) -> list[ManifestEntry]:
        """Entries that still have to run on a resume: neither completed nor skipped."""
        return [e for e in self.entries if e.status not in ("completed", "skipped")]

    def save(self, study_dir: str | PathLike[str]) -> Path:
        """Write ``study_dir/manifest.json`` atomically (creating ``study_dir``); return its path."""
        return write_document(self, study_dir, MANIFEST_FILE)

    @classmethod
    def load(cls, study_dir: str | PathLike[str]) -> Self:
        """Load ``manifest.json`` from a study directory (or the file itself).

        Older schema versions are migrated. A missing or corrupt file, a file that is not a
        manifest, or a newer major schema version raises a one-line
        :class:`~llem_schema.ResultFormatError`.
        """
        return load_document_file(
            cls, study_dir, MANIFEST_FILE, kind="study manifest", migrations=MANIFEST_MIGRATIONS
        )
