"""llem_persistence: timeseries Parquet, raw per-process staging, late aggregation, exporters
and the SQLite results store.

Depends on ``llem_schema`` (and pyarrow), never on energy readers or a backend.
"""

from llem_persistence.errors import PersistenceError

__all__ = ["PersistenceError"]
