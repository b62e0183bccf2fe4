"""A study planned but not run: how long it should take, from earlier runs of the same
configurations in the results store (what ``llem study --dry-run`` shows)."""

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llem_harness.study.gaps import gaps_between
from llem_harness.study.session import LoadedStudy
from llem_schema import LlemError

if TYPE_CHECKING:
    from llem_store import RunTimes

__all__ = ["StudyEstimate", "estimate_study", "typical_durations"]

logger = logging.getLogger(__name__)


def typical_durations(db: Path, config_hashes: list[str]) -> dict[str, "RunTimes"]:
    """How long earlier completed runs took per config hash (medians of their windows and of
    their whole runs); empty when the store does not exist or cannot be read (a dry run never
    creates one)."""
    from llem_store import ResultStore

    if not db.is_file():
        return {}
    try:
        with ResultStore(db, create=False) as store:
            return store.typical_durations(config_hashes)
    except (LlemError, OSError, sqlite3.Error) as exc:
        logger.warning("no run history from %s: %s", db, exc)
        return {}


@dataclass(frozen=True)
class StudyEstimate:
    """How long a study should take, from earlier runs of its configurations in a store."""

    window_s: dict[int, float]
    """Median measurement window of earlier runs, s, by point index (points without one are
    missing)."""
    run_s: dict[int, float]
    """Median whole run of earlier runs (model loading, baseline and warmup included), s, by
    point index."""
    windows_s: float
    """The windows of every run whose point has an earlier run, added up, s."""
    runs_s: float
    """The whole runs of every run whose point has an earlier run, added up, s."""
    gaps_s: float
    """The pauses between runs, added up, s."""
    unknown_points: int
    """Points with no earlier run: their runs are not in the estimate."""

    @property
    def total_s(self) -> float:
        """At least this long: the runs and the gaps between them."""
        return self.runs_s + self.gaps_s


def estimate_study(loaded: LoadedStudy, *, db: Path) -> StudyEstimate:
    """Estimate ``loaded`` from the runs in the store at ``db``; runs and creates nothing."""
    study, plan = loaded.study, loaded.plan
    durations = typical_durations(db, [point.config_hash for point in plan.points])
    known = [point for point in plan.points if point.config_hash in durations]
    window_s = {point.index: durations[point.config_hash].window_s for point in known}
    run_s = {point.index: durations[point.config_hash].whole_s for point in known}
    return StudyEstimate(
        window_s=window_s,
        run_s=run_s,
        windows_s=sum(window_s.get(run.point_index, 0.0) for run in plan.runs),
        runs_s=sum(run_s.get(run.point_index, 0.0) for run in plan.runs),
        gaps_s=sum(gaps_between(study, [(run.point_index, run.cycle) for run in plan.runs])),
        unknown_points=len(plan.points) - len(window_s),
    )
