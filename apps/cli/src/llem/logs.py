"""Logging set-up for the ``llem`` process (library code never adds handlers)."""

from llem_harness.logs import configure_process_logging

__all__ = ["configure_logging"]


def configure_logging(*, verbose: bool) -> None:
    """Warnings (debug with ``-v``) from llem; third-party launch chatter only with ``-v``."""
    configure_process_logging(verbose=verbose)
