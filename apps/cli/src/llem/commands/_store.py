"""What the store commands share: the ``--db`` option, opening the store, reading times.

Only the standard library and ``llem_store`` load here (no pydantic, no pyarrow),
so ``llem results list`` starts fast.
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from llem.errors import UsageError

if TYPE_CHECKING:
    from llem_store import ExperimentSummary, ResultStore

__all__ = [
    "DB_ENV",
    "DbOption",
    "db_option",
    "open_store",
    "parse_when",
    "refuse_to_replace",
    "resolve_db",
    "result_file",
]

DB_ENV: Final = "LLEM_DB"
"""The environment variable naming the results store when ``--db`` is not given."""

DEFAULT_RESULTS_DIR: Final = Path("results")


def db_option(default: str = "results/llem.db") -> Any:
    """The ``--db`` option (``$LLEM_DB`` when not given), its default named in the help."""
    return typer.Option(
        "--db",
        envvar=DB_ENV,
        metavar="PATH",
        help=f"The results store (default: {default}).",
        show_default=False,
    )


DbOption = Annotated[Path | None, db_option()]

_AGE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_AGE_UNITS_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE: Final = re.compile(r"\d{4}-?\d{2}-?\d{2}")


def resolve_db(db: Path | None, results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
    """``--db`` (typer has already read ``$LLEM_DB`` into it), else ``results_dir/llem.db``."""
    from llem_store import DEFAULT_STORE_FILE

    return db if db is not None else results_dir / DEFAULT_STORE_FILE


def open_store(db: Path | None, *, create: bool = False) -> "ResultStore":
    """The store at ``--db``; reading commands pass ``create=False``, so a missing file is a
    one-line error saying how to make one (exit 2)."""
    from llem_store import ResultStore

    return ResultStore(resolve_db(db), create=create)


def result_file(summary: "ExperimentSummary") -> Path:
    """The indexed ``result.json`` of an experiment; a one-line error (exit 2) when it has
    none yet, or when its directory was moved or deleted since it was indexed."""
    if summary.result_path is None:
        raise UsageError(f"{summary.experiment_id} has no result file (status {summary.status})")
    file = summary.result_path / "result.json"
    if not file.is_file():
        raise UsageError(
            f"{summary.experiment_id}: {file} is missing (moved or deleted); re-index with "
            "`llem results import DIR`"
        )
    return file


def refuse_to_replace(output: Path | None, *, overwrite: bool) -> None:
    """A one-line error (exit 2) when ``output`` is an existing file and ``--overwrite`` was
    not given: nothing a user saved is replaced by accident."""
    if output is not None and output.exists() and not output.is_dir() and not overwrite:
        raise UsageError(f"{output} exists; choose another file, or pass --overwrite")


def parse_when(text: str, *, option: str, end_of_day: bool = False) -> datetime:
    """``--since``/``--until``: an ISO date or date-time (UTC unless it says otherwise: the
    zone of ids and of every time llem shows), or an age before now such as ``7d``, ``12h``,
    ``30m``, ``90s``, ``2w``.

    With ``end_of_day`` a bare date means the end of that day, so ``--until 2026-11-01``
    includes the first of November.
    """
    value = text.strip()
    age = _AGE.fullmatch(value.lower())
    try:
        if age is not None:
            return datetime.now(UTC) - timedelta(seconds=float(age[1]) * _AGE_UNITS_S[age[2]])
        when = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{option} {text!r}: give a date (2026-11-01), a date and time (2026-11-01T14:30) "
            "or an age (7d, 12h, 30m) within the years 1 to 9999"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end_of_day and _DATE.fullmatch(value):
        try:
            when += timedelta(days=1)
        except OverflowError:  # --until 9999-12-31: no upper bound
            return datetime.max.replace(tzinfo=UTC)
    return when
