"""What a figure is drawn from: :class:`Experiment` (a result with its power timeseries) and
:class:`Study` (a study's runs, each with the point of the sweep it ran), read from disk by
:func:`load_experiment` and :func:`load_study`, or made in a notebook from a result in hand."""

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Final, Self

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import JsonValue

from llem_report.errors import ReportError
from llem_schema import (
    RESULT_FILE,
    STUDY_RESULT_FILE,
    ExperimentResult,
    LlemError,
    LlemWarning,
    StudyManifest,
    StudyResult,
)

__all__ = ["TIMESERIES_COLUMNS_DRAWN", "Experiment", "Study", "load_experiment", "load_study"]

logger = logging.getLogger(__name__)

TIMESERIES_COLUMNS_DRAWN: Final = ("timestamp_s", "gpu_index", "gpu_power_w", "gpu_temperature_c")
"""The timeseries columns the figures read (the sidecar holds more)."""


@dataclass(frozen=True)
class StudyPoint:
    """Where a run sits in its study: the point of the sweep and the cycle."""

    point_index: int
    cycle: int
    overrides: Mapping[str, JsonValue]
    design_hash: str


@dataclass(frozen=True)
class Experiment:
    """One result and what its figures need beside it.

    ``timeseries`` is the power/temperature sidecar as an Arrow table (the columns of
    :data:`TIMESERIES_COLUMNS_DRAWN` at least), None where the result has none or it was not
    read. ``directory`` is where the result was read from; ``point`` its place in a study.
    """

    result: ExperimentResult
    timeseries: pa.Table | None = None
    directory: Path | None = None
    point: StudyPoint | None = None
    timeseries_note: str | None = field(default=None, compare=False)
    """Why there is no timeseries where the result names one (the file missing or corrupt)."""

    @property
    def id(self) -> str:
        return self.result.experiment_id

    def with_timeseries(self) -> Self:
        """This experiment with its timeseries read from ``directory`` (itself where it has
        one already, or none to read)."""
        if self.timeseries is not None or self.directory is None or self.result.timeseries is None:
            return self
        table, note = _read_timeseries(self.directory, self.result.timeseries)
        return replace(self, timeseries=table, timeseries_note=note)


def load_experiment(path: str | PathLike[str], *, timeseries: bool = True) -> Experiment:
    """The result in ``path`` (a result directory or its ``result.json``), with its
    timeseries unless ``timeseries`` is False. A missing or unreadable sidecar does not
    fail: the experiment says why in ``timeseries_note``."""
    source = Path(path)
    directory = source.parent if source.name == RESULT_FILE else source
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LlemWarning)
        try:
            result = ExperimentResult.from_json(directory / RESULT_FILE)
        except LlemError as exc:
            raise ReportError(str(exc)) from None
    note = None
    for warning in caught:
        if "sidecar" in str(warning.message) and result.timeseries is None:
            note = str(warning.message)  # said where the figure would be
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    experiment = Experiment(result, directory=directory, timeseries_note=note)
    return experiment.with_timeseries() if timeseries else experiment


def _read_timeseries(directory: Path, name: str) -> tuple[pa.Table | None, str | None]:
    path = directory / name
    try:
        # ParquetFile, not read_table: that imports pyarrow.dataset (and pandas where it is
        # installed), most of a second before anything is drawn
        table = pq.ParquetFile(path).read(columns=list(TIMESERIES_COLUMNS_DRAWN))
    except FileNotFoundError:
        return None, f"{path}: the timeseries file is missing"
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        return None, f"{path}: not a readable timeseries ({exc})"
    return table, None


@dataclass(frozen=True)
class Study:
    """A study's runs as experiments, with its manifest and, once written, its summary
    (``study.json``: each point's statistics across cycles)."""

    directory: Path
    manifest: StudyManifest
    summary: StudyResult | None
    experiments: tuple[Experiment, ...]
    notes: tuple[str, ...] = ()
    """Runs that completed but could not be read, each a line."""

    @property
    def name(self) -> str:
        return self.manifest.study_name

    def swept(self) -> list[str]:
        """The dotted keys the study varies (more than one value across its points), in the
        order the study file gives them."""
        return swept_keys([entry.overrides for entry in self.manifest.entries])


def swept_keys(overrides: Sequence[Mapping[str, JsonValue]]) -> list[str]:
    """The keys of ``overrides`` with more than one distinct value, in first-seen order."""
    values: dict[str, set[str]] = {}
    for point in overrides:
        for key, value in point.items():
            values.setdefault(key, set()).add(repr(value))
    return [key for key, seen in values.items() if len(seen) > 1]


def load_study(path: str | PathLike[str]) -> Study:
    """The study in directory ``path``: every completed run (timeseries not read: see
    :meth:`Experiment.with_timeseries`), in run order."""
    directory = Path(path)
    try:
        manifest = StudyManifest.load(directory)
    except LlemError as exc:
        raise ReportError(str(exc)) from None
    summary = None
    if (directory / STUDY_RESULT_FILE).is_file():
        try:
            summary = StudyResult.from_json(directory)
        except LlemError as exc:
            logger.warning("%s; the sweep figures use the runs instead", exc)
    experiments, notes = [], []
    for entry in manifest.entries:
        run_dir = entry.result_dir(directory)
        if entry.status != "completed" or run_dir is None or entry.cycle is None:
            continue
        try:
            with warnings.catch_warnings():  # an old result's migration notes are not news here
                warnings.simplefilter("ignore")
                experiment = load_experiment(run_dir, timeseries=False)
        except ReportError as exc:
            notes.append(f"run {entry.run_index} left out: {exc}")
            continue
        point = StudyPoint(entry.point_index, entry.cycle, entry.overrides, manifest.design_hash)
        experiments.append(replace(experiment, point=point))
    if not experiments:
        raise ReportError(
            f"study {manifest.study_id} has no completed run to draw"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    return Study(directory, manifest, summary, tuple(experiments), tuple(notes))
