"""llem: measure what LLM inference costs.

The application layer: it brings ``llem_schema``, ``llem_energy``, ``llem_persistence`` and the
backends together (harness, launchers, studies, config loading) and provides the ``llem`` CLI.
"""

from llem.errors import UsageError

__all__ = ["UsageError"]
