"""Reading the store: which experiments match, one of them, its warnings, config and requests.

Nothing here imports pydantic or pyarrow (a test holds it to that): ``llem results list``
answers from SQLite and plain dataclasses.
"""

import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from llem_store._sqlite import RESULT_FILE, aware, escape_like, like_prefix
from llem_store.connection import StoreConnection
from llem_store.errors import StoreLookupError, UnknownExperimentError, UnknownStudyError
from llem_store.models import (
    EXPERIMENT_STATUSES,
    SUMMARY_FIELDS,
    ExperimentStatus,
    ExperimentSummary,
    StudyRecord,
    utc_text,
)

if TYPE_CHECKING:
    from llem_schema import LatencyStats

__all__ = ["SORT_KEYS", "ExperimentFilter", "FileState", "RunTimes", "StoreQueries"]

FileState = Literal["matches", "changed", "missing", "none"]
"""Whether an indexed ``result.json`` is still the one indexed (see
:meth:`StoreQueries.file_state`)."""


@dataclass(frozen=True)
class RunTimes:
    """How long runs of one configuration took, s (see :meth:`StoreQueries.typical_durations`)."""

    window_s: float
    """The measurement window."""
    whole_s: float
    """From launch to the window's end: model loading, baseline and warmup included."""


_LAUNCH: Final = re.compile(r"_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})_[0-9a-f]{6}$")
"""The launch time (UTC) an id made by llem carries before its random suffix."""


SORT_KEYS: Final[dict[str, tuple[str, bool]]] = {
    "created": ("created_at", True),
    "model": ("model", False),
    "backend": ("backend", False),
    "status": ("status", False),
    "duration": ("duration_s", True),
    "energy": ("energy_j", True),
    "tokens_per_j": ("output_tokens_per_j", True),
    "throughput": ("output_tokens_per_s", True),
    "ttft": ("ttft_median_ms", False),
    "e2e": ("e2e_median_ms", False),
}
"""``sort`` names of :meth:`StoreQueries.list_experiments`: (column, descending by default)."""

_SUMMARY_COLUMNS: Final = ", ".join(SUMMARY_FIELDS)
_NULLABLE: Final = frozenset(
    column
    for column, _ in SORT_KEYS.values()
    if column not in {"created_at", "model", "backend", "status"}
)
_REQUEST_METRICS: Final = ("ttft_ms", "e2e_ms", "tpot_ms", "itl_max_ms")
_CREATED_AT: Final = SUMMARY_FIELDS.index("created_at")
_END_TIME: Final = SUMMARY_FIELDS.index("end_time")
_RESULT_PATH: Final = SUMMARY_FIELDS.index("result_path")


@dataclass(frozen=True)
class ExperimentFilter:
    """Which experiments to list or count: every filter given must hold.

    ``statuses=None`` means any status; ``model`` and ``backend`` match a case-insensitive
    part of the name; ``study`` is a study's id or name; ``warning`` a warning code the
    experiment has (``llem_schema.WARNING_CODES``); ``since``/``until`` bound the start time.
    A bad value is a :class:`ValueError`.
    """

    statuses: Sequence[ExperimentStatus] | None = ("completed",)
    model: str | None = None
    backend: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_output_tokens_per_j: float | None = None
    study: str | None = None
    warning: str | None = None

    def __post_init__(self) -> None:
        if self.statuses is not None:
            unknown = sorted(set(self.statuses) - set(EXPERIMENT_STATUSES))
            if unknown:
                raise ValueError(
                    f"unknown status {unknown[0]!r}: choose from {', '.join(EXPERIMENT_STATUSES)}"
                )

    def where(self) -> tuple[str, list[object]]:
        """The SQL ``WHERE`` clause (empty, or starting with a space) and its parameters."""
        clauses: list[str] = []
        parameters: list[object] = []
        if self.statuses is not None:
            clauses.append(f"status IN ({', '.join('?' for _ in self.statuses)})")
            parameters += self.statuses
        for column, text in (("model", self.model), ("backend", self.backend)):
            if text:
                clauses.append(f"{column} LIKE ? ESCAPE '\\'")
                parameters.append(f"%{escape_like(text)}%")
        if self.since is not None:
            clauses.append("created_at >= ?")
            parameters.append(_bound(self.since, earliest=True))
        if self.until is not None:
            clauses.append("created_at < ?")
            parameters.append(_bound(self.until, earliest=False))
        if self.min_output_tokens_per_j is not None:
            clauses.append("output_tokens_per_j >= ?")
            parameters.append(self.min_output_tokens_per_j)
        if self.study is not None:
            clauses.append(
                "study_id IN (SELECT study_id FROM studies WHERE study_id = ? OR name = ?)"
            )
            parameters += [self.study, self.study]
        if self.warning is not None:
            clauses.append("experiment_id IN (SELECT experiment_id FROM warnings WHERE code = ?)")
            parameters.append(self.warning)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), parameters


class StoreQueries(StoreConnection):
    """The store's queries (part of :class:`~llem_store.ResultStore`)."""

    def list_experiments(
        self,
        where: ExperimentFilter | None = None,
        *,
        sort: str = "created",
        descending: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ExperimentSummary]:
        """Experiments matching ``where`` (default: the completed ones), sorted, one page.

        ``sort`` is a key of :data:`SORT_KEYS` (missing values last); ``descending`` defaults
        to the key's natural direction (newest, most efficient, fastest first). A bad sort
        key, limit or offset is a :class:`ValueError`.
        """
        rows = self._summary_rows(where, sort, descending, limit, offset)
        return [self._summary(row) for row in rows]

    def list_experiment_dicts(
        self,
        where: ExperimentFilter | None = None,
        *,
        sort: str = "created",
        descending: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """:meth:`list_experiments`, each experiment as its
        :meth:`ExperimentSummary.to_json_dict`, built straight from the rows.

        The same dicts, without building a summary on the way: about 30 % less time, which
        counts when a page is the whole store (``llem results list --limit 0 --json``).
        """
        rows = self._summary_rows(where, sort, descending, limit, offset)
        return [self._json_dict(row) for row in rows]

    def _summary_rows(
        self,
        where: ExperimentFilter | None,
        sort: str,
        descending: bool | None,
        limit: int | None,
        offset: int,
    ) -> list[tuple[Any, ...]]:
        """The rows of one page of :meth:`list_experiments`, in ``SUMMARY_FIELDS`` order."""
        if sort not in SORT_KEYS:
            raise ValueError(f"unknown sort key {sort!r}: choose one of {', '.join(SORT_KEYS)}")
        if (limit is not None and limit < 0) or offset < 0:
            raise ValueError("limit and offset must not be negative")
        column, natural = SORT_KEYS[sort]
        direction = "DESC" if (natural if descending is None else descending) else "ASC"
        clause, parameters = (where or ExperimentFilter()).where()
        # SQLite sorts NULL first ascending and last descending: only an ascending sort on a
        # column that can be NULL needs the extra term, which would keep SQLite off the index
        nulls_last = f"{column} IS NULL, " if direction == "ASC" and column in _NULLABLE else ""
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM experiments{clause} "
            f"ORDER BY {nulls_last}{column} {direction}, experiment_id {direction}"
        )
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            parameters += [-1 if limit is None else limit, offset]
        with self._errors():
            rows: list[tuple[Any, ...]] = self._connection.execute(sql, parameters).fetchall()
        return rows

    def count_experiments(self, where: ExperimentFilter | None = None) -> int:
        """How many experiments :meth:`list_experiments` would return without a limit."""
        clause, parameters = (where or ExperimentFilter()).where()
        with self._errors():
            row = self._connection.execute(
                f"SELECT count(*) FROM experiments{clause}", parameters
            ).fetchone()
        return int(row[0])

    def get(self, experiment_id: str) -> ExperimentSummary:
        """One experiment, by its id, its result directory (a path such as
        ``results/tiny_pytorch_…``, or its ``result.json``) or a unique beginning of its id.

        An existing directory wins over a beginning of an id: what names a directory opens that
        directory's experiment, never another one's.
        """
        with self._errors():
            rows = self._connection.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM experiments WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
        if not rows:
            directory = _result_directory(experiment_id)
            if directory is not None:
                return self._at(directory, experiment_id)
            with self._errors():
                rows = self._connection.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM experiments "
                    "WHERE experiment_id LIKE ? ESCAPE '\\' ORDER BY experiment_id LIMIT 6",
                    (like_prefix(experiment_id),),
                ).fetchall()
        if not rows:
            raise UnknownExperimentError(
                f"no experiment {experiment_id!r} in {self.path}", experiment_id=experiment_id
            )
        if len(rows) > 1:
            names = ", ".join(row[0] for row in rows[:5])
            raise StoreLookupError(
                f"{experiment_id!r} matches several experiments ({names}"
                f"{', ...' if len(rows) > 5 else ''}): give more of the id"
            )
        return self._summary(rows[0])

    def _at(self, directory: Path, given: str) -> ExperimentSummary:
        """The experiment indexed from ``directory``."""
        with self._errors():
            row = self._connection.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM experiments WHERE result_path = ?",
                (self._stored_path(directory),),
            ).fetchone()
        if row is None:
            beside = directory.parent / self.path.name
            where = (
                f"{beside} may index it: pass --db {beside}"
                if beside.is_file() and beside.resolve() != self.path.resolve()
                else f"`llem results import {given}` indexes it"
            )
            raise UnknownExperimentError(
                f"{given} is not indexed in {self.path} ({where})", experiment_id=given
            )
        return self._summary(row)

    def compare(self, experiment_ids: Sequence[str]) -> list[ExperimentSummary]:
        """Several experiments side by side, in the order asked."""
        if not experiment_ids:
            raise ValueError("compare needs at least one experiment id")
        return [self.get(experiment_id) for experiment_id in experiment_ids]

    def studies(self) -> list[StudyRecord]:
        """Every registered study with how many of its experiments are indexed, newest first."""
        with self._errors():
            rows = self._connection.execute(
                "SELECT s.study_id, s.name, s.design_hash, s.created_at, s.study_path, "
                "count(e.experiment_id), count(e.result_path) FROM studies s "
                "LEFT JOIN experiments e USING (study_id) GROUP BY s.study_id "
                "ORDER BY s.created_at DESC, s.study_id DESC"
            ).fetchall()
        return [
            StudyRecord(
                study_id=study_id,
                name=name,
                design_hash=design_hash,
                created_at=datetime.fromisoformat(created),
                study_dir=None if path is None else self._absolute(path),
                experiments=experiments,
                with_results=with_results,
            )
            for study_id, name, design_hash, created, path, experiments, with_results in rows
        ]

    def study(self, study: str) -> StudyRecord:
        """The study whose id or name is ``study``: :class:`UnknownStudyError` if none, and a
        :class:`StoreLookupError` naming their ids when several studies share the name."""
        records = self.studies()
        for record in records:
            if record.study_id == study:
                return record
        named = [record for record in records if record.name == study]
        if len(named) > 1:
            ids = ", ".join(record.study_id for record in named)
            raise StoreLookupError(
                f"{len(named)} studies are named {study!r} ({ids}): give the id of one"
            )
        if not named:
            raise UnknownStudyError(f"no study {study!r} in {self.path}", study=study)
        return named[0]

    def typical_durations(self, config_hashes: Sequence[str]) -> dict[str, RunTimes]:
        """How long the completed experiments of each measurement config hash that has any
        took, as medians (for estimating how long a study will take): the measurement window,
        and the whole run from its launch (the time its id carries, ``…_2026-12-02T16-00-31_…``)
        to the window's end, model loading, baseline and warmup included. An id without that
        time counts its window for both."""
        windows: dict[str, list[float]] = {}
        wholes: dict[str, list[float]] = {}
        with self._errors():
            for start in range(0, len(config_hashes), 500):
                chunk = list(config_hashes[start : start + 500])
                rows = self._connection.execute(
                    "SELECT config_hash, duration_s, experiment_id, end_time FROM experiments "
                    "WHERE status = 'completed' AND duration_s IS NOT NULL AND config_hash IN "
                    f"({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for config_hash, duration_s, experiment_id, end_time in rows:
                    window = float(duration_s)
                    windows.setdefault(config_hash, []).append(window)
                    wholes.setdefault(config_hash, []).append(
                        max(window, _since_launch(experiment_id, end_time) or 0.0)
                    )
        return {
            key: RunTimes(statistics.median(windows[key]), statistics.median(wholes[key]))
            for key in windows
        }

    def config(self, experiment_id: str) -> dict[str, Any]:
        """The experiment's effective configuration."""
        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            (text,) = self._connection.execute(
                "SELECT config_json FROM experiments WHERE experiment_id = ?", (full_id,)
            ).fetchone()
        config: dict[str, Any] = json.loads(text)
        return config

    def warnings(self, experiment_id: str) -> list[tuple[str, str, str]]:
        """The experiment's warnings as ``(source, code, message)``, source being
        ``measurement`` or ``aggregation``."""
        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            rows = self._connection.execute(
                "SELECT source, code, message FROM warnings WHERE experiment_id = ? "
                "ORDER BY position",
                (full_id,),
            ).fetchall()
        return [(str(source), str(code), str(message)) for source, code, message in rows]

    def request_stats(self, experiment_id: str) -> "dict[str, LatencyStats | None]":
        """Statistics over the experiment's request rows: ``ttft_ms``, ``e2e_ms``, ``tpot_ms``
        (each request's mean inter-token gap) and ``itl_max_ms`` (each request's longest gap)."""
        from llem_schema import LatencyStats

        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            rows = self._connection.execute(
                f"SELECT {', '.join(_REQUEST_METRICS)} FROM requests WHERE experiment_id = ?",
                (full_id,),
            ).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in _REQUEST_METRICS]
        return {
            name: LatencyStats.from_values(v for v in values if v is not None)
            for name, values in zip(_REQUEST_METRICS, columns, strict=True)
        }

    def file_state(self, experiment_id: str) -> FileState:
        """Whether the experiment's ``result.json`` on disk is still the one indexed:
        ``matches``, ``changed``, ``missing``, or ``none`` (no result directory yet)."""
        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            stored, digest = self._connection.execute(
                "SELECT result_path, result_sha256 FROM experiments WHERE experiment_id = ?",
                (full_id,),
            ).fetchone()
        if stored is None:
            return "none"
        found = self._result_digest(stored)
        if found is None:
            return "missing"
        return "matches" if found == digest else "changed"

    def running(self) -> list[ExperimentSummary]:
        """Experiments recorded as running: started, with no result yet (or abandoned, when
        the process that ran them is gone)."""
        return self.list_experiments(
            ExperimentFilter(statuses=("running",)), sort="created", descending=False
        )

    def _summary(self, row: tuple[Any, ...]) -> ExperimentSummary:
        # Positional, in SUMMARY_FIELDS order (the SELECT's): a list of thousands is built here
        values = list(row)
        values[_CREATED_AT] = datetime.fromisoformat(values[_CREATED_AT])
        if values[_END_TIME] is not None:
            values[_END_TIME] = datetime.fromisoformat(values[_END_TIME])
        if values[_RESULT_PATH] is not None:
            values[_RESULT_PATH] = self._absolute(values[_RESULT_PATH])
        return ExperimentSummary(*values)

    def _json_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """``self._summary(row).to_json_dict()``, without the summary."""
        data = dict(zip(SUMMARY_FIELDS, row, strict=True))
        data["created_at"] = datetime.fromisoformat(data["created_at"]).isoformat()
        if data["end_time"] is not None:
            data["end_time"] = datetime.fromisoformat(data["end_time"]).isoformat()
        if data["result_path"] is not None:
            data["result_path"] = str(self._absolute(data["result_path"]))
        return data


def _bound(when: datetime, *, earliest: bool) -> str:
    """``when`` as stored text; a time at the edge of the calendar (year 1 or 9999 in another
    time zone) that UTC cannot hold becomes the earliest or latest time there is."""
    try:
        return utc_text(aware(when))
    except (OverflowError, ValueError):
        edge = datetime.min if earliest else datetime.max
        return utc_text(edge.replace(tzinfo=UTC))


def _result_directory(text: str) -> Path | None:
    """``text`` as a result directory when it names one (a ``result.json`` names its
    directory); None when it is no path to one."""
    path = Path(text)
    if path.name == RESULT_FILE:
        path = path.parent
    try:
        return path if (path / RESULT_FILE).is_file() else None
    except OSError:  # a name no file system takes (too long): no directory, only an id
        return None


def _since_launch(experiment_id: str, end_time: str | None) -> float | None:
    """Seconds from the launch time in ``experiment_id`` to ``end_time``; None when the id
    carries no launch time or there is no end."""
    found = _LAUNCH.search(experiment_id)
    if found is None or end_time is None:
        return None
    launched = datetime.strptime(found[1], "%Y-%m-%dT%H-%M-%S").replace(tzinfo=UTC)
    return (aware(datetime.fromisoformat(end_time)) - launched).total_seconds()
