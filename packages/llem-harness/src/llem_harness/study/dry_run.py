"""A study planned but not run: how long it should take, from earlier runs of the same
configurations in the results store (what ``llem study --dry-run`` shows)."""

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from llem_harness.study.gaps import gaps_between
from llem_harness.study.session import LoadedStudy
from llem_schema import LlemError

__all__ = ["StudyEstimate", "estimate_study", "typical_durations"]

logger = logging.getLogger(__name__)


def typical_durations(db: Path, config_hashes: list[str]) -> dict[str, float]:
    """Median measurement window, s, of earlier completed runs per config hash; empty when
    the store does not exist or cannot be read (a dry run never creates one)."""
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
    windows_s: float
    """The windows of every run whose point has an earlier run, added up, s."""
    gaps_s: float
    """The pauses between runs, added up, s."""
    unknown_points: int
    """Points with no earlier run: their windows are not in the estimate."""

    @property
    def total_s(self) -> float:
        """At least this long: windows and gaps (model loading and warmup come on top)."""
        return self.windows_s + self.gaps_s


def estimate_study(loaded: LoadedStudy, *, db: Path) -> StudyEstimate:
    """Estimate ``loaded`` from the runs in the store at ``db``; runs and creates nothing."""
    study, plan = loaded.study, loaded.plan
    durations = typical_durations(db, [point.config_hash for point in plan.points])
    window_s = {
        point.index: durations[point.config_hash]
        for point in plan.points
        if point.config_hash in durations
    }
    return StudyEstimate(
        window_s=window_s,
        windows_s=sum(window_s.get(run.point_index, 0.0) for run in plan.runs),
        gaps_s=sum(gaps_between(study, [(run.point_index, run.cycle) for run in plan.runs])),
        unknown_points=len(plan.points) - len(window_s),
    )
