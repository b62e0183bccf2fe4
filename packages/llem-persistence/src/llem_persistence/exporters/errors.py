"""The error every exporter raises for a bad input or a file it cannot write."""

from llem_persistence.errors import PersistenceError

__all__ = ["ExportError", "ExportTargetError"]


class ExportError(PersistenceError):
    """An export could not be written: bad path, unknown format, or input that is not results.

    ``str(error)`` is one line naming the file and what to do. Nothing is left at the target
    when this is raised: a previous file there is untouched.
    """


class ExportTargetError(ExportError):
    """The path to write cannot be: it is a directory, or its directory is missing or a
    file. A mistake in what was asked, found before anything is read."""
