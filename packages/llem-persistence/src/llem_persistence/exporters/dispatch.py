"""``export(results, path, format=...)``: one entry point for every export format."""

from collections.abc import Callable, Iterable
from os import PathLike
from pathlib import Path
from typing import Final, Literal, get_args

from llem_persistence.exporters.csv import export_csv
from llem_persistence.exporters.errors import ExportError
from llem_persistence.exporters.json import export_json
from llem_persistence.exporters.parquet import export_parquet
from llem_persistence.exporters.xlsx import export_xlsx
from llem_schema import ExperimentResult

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export", "format_for_path"]

ExportFormat = Literal["csv", "json", "parquet", "xlsx"]
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = get_args(ExportFormat)
"""The format names :func:`export` accepts."""

_WRITERS: Final[dict[str, Callable[[Iterable[ExperimentResult], Path], int]]] = {
    "csv": export_csv,
    "json": export_json,
    "parquet": export_parquet,
    "xlsx": export_xlsx,
}
_SUFFIXES: Final = {
    ".csv": "csv",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}


def format_for_path(path: str | PathLike[str]) -> ExportFormat:
    """The export format a file name implies by its suffix (``.csv``, ``.json``,
    ``.parquet`` or ``.pq``, ``.xlsx``; case-insensitive)."""
    suffix = Path(path).suffix.lower()
    name = _SUFFIXES.get(suffix)
    if name is None:
        raise ExportError(
            f"cannot tell the export format of {path} from its suffix {suffix or '(none)'!r}: "
            f"name it .csv, .json, .parquet or .xlsx, or pass format= one of "
            f"{', '.join(EXPORT_FORMATS)}"
        )
    return _checked_format(name)


def _checked_format(name: str) -> ExportFormat:
    for known in EXPORT_FORMATS:
        if name == known:
            return known
    raise ExportError(f"unknown export format {name!r}: choose one of {', '.join(EXPORT_FORMATS)}")


def export(
    results: Iterable[ExperimentResult],
    path: str | PathLike[str],
    *,
    format: str | None = None,
) -> int:
    """Export ``results`` to ``path`` in ``format`` (default: from the file's suffix).

    Returns how many results were exported. See :func:`export_csv`, :func:`export_json`,
    :func:`export_parquet` and :func:`export_xlsx` for each format. Raises
    :class:`ExportError` for an unknown format, a bad path or input.
    """
    name = format_for_path(path) if format is None else _checked_format(format.lower())
    return _WRITERS[name](results, Path(path))
