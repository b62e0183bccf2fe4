"""JSON export: a JSON array of complete results, one result per line.

Each element is exactly what ``result.json`` holds (``ExperimentResult.model_dump_json``,
``schema_version`` inside), so nothing is lost and each element loads back with
``ExperimentResult.model_validate``. The layout is ``[`` on the first line, one compact
result per line separated by commas, ``]`` on the last; ``json.load``, pandas
(``read_json``) and DuckDB (``read_json``) read it. No results gives ``[]``.
"""

from collections.abc import Iterable
from os import PathLike

from llem_persistence.exporters._target import ResultSource, export_file
from llem_schema import ExperimentResult

__all__ = ["export_json"]


def export_json(results: Iterable[ExperimentResult], path: str | PathLike[str]) -> int:
    """Write ``results`` to ``path`` as a JSON array and return how many were written.

    Streams one result at a time; written atomically like every export. Raises
    :class:`ExportError` for a bad path or input.
    """
    source = ResultSource(results)
    with export_file(path, "json", source) as temporary, temporary.open("wb") as handle:
        separator = b"[\n"
        for result in source:
            handle.write(separator)
            handle.write(result.model_dump_json().encode("utf-8"))
            separator = b",\n"
        handle.write(b"[]\n" if separator == b"[\n" else b"\n]\n")
    return source.count
