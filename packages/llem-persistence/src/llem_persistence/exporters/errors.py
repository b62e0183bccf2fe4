"""The error every exporter raises for a bad input or a file it cannot write."""

from llem_persistence.errors import PersistenceError

__all__ = ["ExportError"]


class ExportError(PersistenceError):
    """An export could not be written: bad path, unknown format, or input that is not results.

    ``str(error)`` is one line naming the file and what to do. Nothing is left at the target
    when this is raised: a previous file there is untouched.
    """
