""":class:`ResultStore`: the SQLite index of result directories, one class made of its jobs."""

from typing import Final

from llem_store.ingest import StoreIngest
from llem_store.maintenance import StoreMaintenance

__all__ = ["DEFAULT_STORE_FILE", "ResultStore"]

DEFAULT_STORE_FILE: Final = "llem.db"
"""The store's file name inside a results directory: ``results/llem.db``."""


class ResultStore(StoreIngest, StoreMaintenance):
    """The SQLite index of result directories (default ``results/llem.db``).

    >>> with ResultStore("results/llem.db") as store:
    ...     store.import_tree("results")
    ...     best = store.list_experiments(sort="tokens_per_j", limit=5)

    Its jobs live apart: opening and migrations (:class:`~llem_store.connection.StoreConnection`),
    ingest (:class:`~llem_store.ingest.StoreIngest`), queries
    (:class:`~llem_store.queries.StoreQueries`) and maintenance
    (:class:`~llem_store.maintenance.StoreMaintenance`).
    """

    def __enter__(self) -> "ResultStore":
        return self
