"""What every exporter shares: checking the input, and writing the file all at once.

An export is written to a temporary file beside the target (``.<name>.<random>.tmp``, from
:func:`llem_schema.io.atomic_path`), fsynced and renamed over the target only when complete.
A failed export removes its temporary; a killed one (SIGKILL, power loss) may leave it, and
it never carries the export's own suffix, so ``*.csv``-style globs never pick it up.
"""

import contextlib
import logging
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path

from llem_persistence.exporters.errors import ExportError, ExportTargetError
from llem_schema import ExperimentResult
from llem_schema.io import atomic_path

__all__ = ["ResultSource", "export_file"]

logger = logging.getLogger(__name__)


class ResultSource:
    """The results to export, iterated once, checked item by item and counted.

    An exception raised by the caller's iterable itself (a generator that fails reading
    results) passes through unchanged and is remembered in :attr:`failure`, so it is never
    mistaken for a failure to write the export.
    """

    def __init__(self, results: Iterable[ExperimentResult]) -> None:
        given: object = results
        if isinstance(given, ExperimentResult):
            raise ExportError(
                "export takes an iterable of results: pass [result], not a single ExperimentResult"
            )
        if isinstance(given, str | bytes | PathLike):
            raise ExportError(
                f"export takes an iterable of ExperimentResult, got the path {given!r}: "
                "load results first (ExperimentResult.from_json)"
            )
        try:
            self._iterator = iter(results)
        except TypeError:
            raise ExportError(
                f"export takes an iterable of ExperimentResult, got {type(given).__name__}"
            ) from None
        self.count = 0
        self.failure: BaseException | None = None

    def __iter__(self) -> Iterator[ExperimentResult]:
        while True:
            try:
                item = next(self._iterator)
            except StopIteration:
                return
            except BaseException as exc:
                self.failure = exc
                raise
            if not isinstance(item, ExperimentResult):
                raise ExportError(
                    f"item {self.count} of the results to export is a {type(item).__name__}, "
                    "not an ExperimentResult"
                )
            self.count += 1
            yield item


def _check_target(target: Path, kind: str) -> None:
    if target.is_dir():
        raise ExportTargetError(f"cannot write {kind} export {target}: it is a directory")
    if not target.parent.is_dir():
        state = "is a file, not a directory" if target.parent.exists() else "does not exist"
        raise ExportTargetError(f"cannot write {kind} export {target}: {target.parent} {state}")


@contextlib.contextmanager
def export_file(path: str | PathLike[str], kind: str, source: ResultSource) -> Iterator[Path]:
    """Yield a temporary path to write the ``kind`` export into; it becomes ``path`` on success.

    An ``OSError`` while writing (permissions, disk full) becomes a one-line
    :class:`ExportError`; the previous file at ``path``, if any, stays as it was.
    """
    target = Path(path)
    try:
        _check_target(target, kind)
        with atomic_path(target) as temporary:
            yield temporary
    except OSError as exc:
        if exc is source.failure:
            raise
        reason = exc.strerror or str(exc)
        raise ExportError(f"cannot write {kind} export {target}: {reason}") from exc
    logger.debug("exported %d result(s) as %s to %s", source.count, kind, target)
