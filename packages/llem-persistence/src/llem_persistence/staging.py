"""Raw per-process results staged under ``results/.staging/<experiment_id>/``.

Each worker saves its :class:`~llem_schema.RawProcessResult` here the moment its measurement
ends, so a run that fails later (another worker dies, the machine is interrupted) keeps what
finished and ``llem aggregate <id>`` can recover it. Layout of one experiment::

    .staging/<experiment_id>/
      experiment.json                  the config and how many processes were launched
      process_0.json                   a worker's RawProcessResult (atomic)
      process_0.done                   its completion marker: size and sha256 of the JSON
      process_0.timeseries.parquet     its power samples, when energy was sampled

Every path comes from a validated experiment id and is checked to stay inside the staging
root, also through symlinks.
"""

import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any, Final

from pydantic import Field, PositiveInt, ValidationError

from llem_persistence.errors import PersistenceError, UnsafePathError
from llem_persistence.locks import exclusive, is_locked
from llem_schema import (
    EnvironmentSnapshot,
    ExperimentConfig,
    FrozenModel,
    InvalidExperimentIdError,
    LlemError,
    RawProcessResult,
    ResultFormatError,
    validate_experiment_id,
)
from llem_schema.io import (
    atomic_write_bytes,
    load_document,
    parse_json_object,
    read_document_text,
    read_json_object,
)
from llem_schema.versions import RAW_MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "STAGING_DIR",
    "Completeness",
    "StagedExperiment",
    "StagingRepository",
]

STAGING_DIR: Final = ".staging"
_MANIFEST: Final = "experiment.json"
_RUN_LOCK: Final = "run.lock"
_PROCESS_FILE: Final = re.compile(r"process_(0|[1-9][0-9]*)\.json")


class StagedExperiment(FrozenModel):
    """What the launcher records before any worker starts (``experiment.json``)."""

    schema_version: str = Field(default=SCHEMA_VERSION, description="llem schema version.")
    experiment_id: str = Field(description="The staged experiment.")
    config: ExperimentConfig = Field(description="The resolved experiment config.")
    expected_processes: PositiveInt = Field(description="Worker processes launched.")
    created: datetime = Field(description="When the run was launched.")
    environment: EnvironmentSnapshot | None = Field(
        default=None, description="The machine the run was launched on."
    )


@dataclass(frozen=True)
class Completeness:
    """Which processes of an experiment have a complete staged result."""

    expected_processes: int
    present: list[int]
    missing: list[int]
    duplicates: list[int] = field(default_factory=list)
    """Process indices claimed by more than one staged file."""

    @property
    def complete(self) -> bool:
        return not self.missing and not self.duplicates


class StagingRepository:
    """Raw per-process results of unfinished experiments below ``results_dir/.staging``."""

    def __init__(self, results_dir: str | PathLike[str]) -> None:
        self.root = Path(results_dir) / STAGING_DIR

    # -- paths -----------------------------------------------------------------------------

    def experiment_dir(self, experiment_id: str) -> Path:
        """The staging directory of ``experiment_id``; refuses ids that could escape."""
        try:
            validate_experiment_id(experiment_id)
        except InvalidExperimentIdError as exc:
            raise UnsafePathError(str(exc)) from None
        return self._inside(self.root / experiment_id)

    def _inside(self, path: Path) -> Path:
        root = self.root.resolve()
        resolved = path.resolve()
        if resolved != root and not resolved.is_relative_to(root):
            raise UnsafePathError(f"{path} resolves to {resolved}, outside {root}")
        return path

    def raw_path(self, experiment_id: str, process_index: int) -> Path:
        return self._inside(self.experiment_dir(experiment_id) / f"process_{process_index}.json")

    def timeseries_path(self, experiment_id: str, process_index: int) -> Path:
        """Where process ``process_index`` stages its power samples."""
        directory = self.experiment_dir(experiment_id)
        return self._inside(directory / f"process_{process_index}.timeseries.parquet")

    def files_dir(self, experiment_id: str, process_index: int) -> Path:
        """Where process ``process_index``'s backend leaves files to keep beside the result
        (created here); see :meth:`kept_files`."""
        directory = self._inside(
            self.experiment_dir(experiment_id) / f"process_{process_index}.files"
        )
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def kept_files(self, experiment_id: str, num_processes: int) -> dict[str, Path]:
        """The files the processes' backends left, by the name each gets beside the result:
        its own, prefixed ``process_<i>.`` when the experiment had several processes."""
        kept: dict[str, Path] = {}
        experiment = self.experiment_dir(experiment_id)
        for index in range(num_processes):
            directory = experiment / f"process_{index}.files"
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    name = path.name if num_processes == 1 else f"process_{index}.{path.name}"
                    kept[name] = path
        return kept

    def staged_file(self, experiment_id: str, name: str) -> Path:
        """A file named by a staged document (a timeseries), checked to stay inside."""
        return self._inside(self.experiment_dir(experiment_id) / name)

    def _marker_path(self, experiment_id: str, process_index: int) -> Path:
        return self._inside(self.experiment_dir(experiment_id) / f"process_{process_index}.done")

    # -- writing ---------------------------------------------------------------------------

    def begin(
        self,
        config: ExperimentConfig,
        experiment_id: str,
        expected_processes: int,
        *,
        environment: EnvironmentSnapshot | None = None,
    ) -> Path:
        """Record the config, process count and machine of a run that is about to start."""
        directory = self.experiment_dir(experiment_id)
        for attempt in range(3):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:  # the empty staging root went (see delete) meanwhile
                if attempt == 2:
                    raise
        manifest = StagedExperiment(
            experiment_id=experiment_id,
            config=config,
            expected_processes=expected_processes,
            created=datetime.now(UTC),
            environment=environment,
        )
        atomic_write_bytes(directory / _MANIFEST, manifest.model_dump_json(indent=2).encode())
        return directory

    def save_raw(self, experiment_id: str, raw: RawProcessResult) -> Path:
        """Stage one process's result atomically, then its completion marker."""
        if raw.experiment_id != experiment_id:
            raise PersistenceError(
                f"raw result of experiment {raw.experiment_id!r} cannot be staged under "
                f"{experiment_id!r}"
            )
        path = self.raw_path(experiment_id, raw.process_index)
        marker_path = self._marker_path(experiment_id, raw.process_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = raw.model_dump_json(indent=2).encode()
        # Marker gone first: a writer killed at any point leaves the old pair or no pair.
        marker_path.unlink(missing_ok=True)
        atomic_write_bytes(path, data)
        marker = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_bytes(marker_path, json.dumps(marker).encode())
        return path

    # -- reading ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, experiment_id: str) -> Iterator[None]:
        """Mark the experiment as being run by this process while the block runs.

        An advisory lock: the kernel releases it when the process ends, even by SIGKILL, so
        :meth:`is_running` tells a live run from one that died and left its staging.
        """
        with exclusive(self._run_lock(experiment_id)):
            yield

    def is_running(self, experiment_id: str) -> bool:
        """Whether a live process is running the experiment (see :meth:`running`): False
        for a staging whose run ended or died, or that was never run."""
        return is_locked(self._run_lock(experiment_id))

    def _run_lock(self, experiment_id: str) -> Path:
        return self._inside(self.experiment_dir(experiment_id) / _RUN_LOCK)

    def list_staged(self) -> list[str]:
        """Experiment ids with a staging directory, sorted."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            try:
                validate_experiment_id(entry.name)
            except InvalidExperimentIdError:
                continue
            if entry.is_dir() and not entry.is_symlink():
                found.append(entry.name)
        return sorted(found)

    def has_raw(self, experiment_id: str) -> bool:
        """Whether at least one process result of ``experiment_id`` is completely staged."""
        return bool(self._complete_files(experiment_id))

    def load_manifest(self, experiment_id: str) -> StagedExperiment:
        """The config and process count recorded by :meth:`begin`."""
        path = self._inside(self.experiment_dir(experiment_id) / _MANIFEST)
        try:
            document = read_json_object(path, kind="staged experiment")
            return StagedExperiment.model_validate(document)
        except ResultFormatError as exc:
            raise PersistenceError(str(exc)) from None
        except ValidationError as exc:
            raise PersistenceError(
                f"{path}: invalid staged experiment: {exc.errors()[0]['msg']}"
            ) from None

    def load_all_raw(self, experiment_id: str) -> list[RawProcessResult]:
        """Every completely staged process result, ordered by process index.

        A file without its completion marker (its process was still writing, or died) is
        left out; a file whose marker does not match its content, or that does not parse,
        is an error naming the file.
        """
        results = []
        for path in self._complete_files(experiment_id):
            try:
                text = read_document_text(path, kind="raw process result")
                raw = _current_raw(text) or load_document(
                    RawProcessResult,
                    parse_json_object(text, path, kind="raw process result"),
                    migrations=RAW_MIGRATIONS,
                    source=path,
                )
            except LlemError as exc:
                raise PersistenceError(str(exc)) from None
            if raw.experiment_id != experiment_id:
                raise PersistenceError(
                    f"{path}: belongs to experiment {raw.experiment_id!r}, not {experiment_id!r}"
                )
            results.append(raw)
        return sorted(results, key=lambda raw: raw.process_index)

    def _complete_files(self, experiment_id: str) -> list[Path]:
        directory = self.experiment_dir(experiment_id)
        if not directory.is_dir():
            return []
        complete = []
        for path in sorted(directory.iterdir()):
            match = _PROCESS_FILE.fullmatch(path.name)
            if match is None:
                continue
            marker = self._marker_path(experiment_id, int(match[1]))
            if not marker.is_file():
                continue
            self._check_marker(path, marker)
            complete.append(self._inside(path))
        return complete

    @staticmethod
    def _check_marker(path: Path, marker: Path) -> None:
        try:
            expected: dict[str, Any] = json.loads(marker.read_text())
            data = path.read_bytes()
        except (OSError, ValueError) as exc:
            raise PersistenceError(f"{marker}: unreadable completion marker: {exc}") from None
        if expected.get("sha256") != hashlib.sha256(data).hexdigest():
            raise PersistenceError(
                f"{path}: content does not match its completion marker (changed after it was "
                "staged); remove the file to aggregate without it"
            )

    def validate_process_completeness(
        self, experiment_id: str, expected_processes: int
    ) -> Completeness:
        """Which of ``expected_processes`` are staged, missing, or claimed twice."""
        seen: dict[int, int] = {}
        for raw in self.load_all_raw(experiment_id):
            seen[raw.process_index] = seen.get(raw.process_index, 0) + 1
        return Completeness(
            expected_processes=expected_processes,
            present=sorted(seen),
            missing=[i for i in range(expected_processes) if i not in seen],
            duplicates=sorted(i for i, count in seen.items() if count > 1),
        )

    # -- cleanup ---------------------------------------------------------------------------

    def delete(self, experiment_id: str) -> bool:
        """Remove the staging of ``experiment_id``, and the staging root when nothing else
        is staged in it; False if there was none."""
        directory = self.experiment_dir(experiment_id)
        if directory.is_symlink():
            raise UnsafePathError(f"{directory} is a symlink; refusing to delete through it")
        if not directory.is_dir():
            return False
        shutil.rmtree(directory)
        with contextlib.suppress(OSError):  # another run's staging is there: it stays
            self.root.rmdir()
        return True


def _current_raw(text: str) -> RawProcessResult | None:
    """The raw result in ``text`` when it is valid and states the current schema version:
    pydantic validates the JSON directly, without building Python dicts first. Anything else
    (an older version to migrate, a problem to report word for word) returns ``None`` and
    the general path decides."""
    try:
        raw = RawProcessResult.model_validate_json(text)
    except ValidationError:
        return None
    current = "schema_version" in raw.model_fields_set and raw.schema_version == SCHEMA_VERSION
    return raw if current else None
