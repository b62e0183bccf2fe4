"""Logging of the processes the harness starts itself (workers, a study's runs).

Library code adds no handlers; these processes are the harness's own, and their output goes
to a terminal or a run's log, so it configures them as the ``llem`` command configures
itself: warnings (debug when verbose), and the chatter of frameworks' loggers only when
verbose.
"""

import logging
from typing import Final

__all__ = ["NOISY_LOGGERS", "configure_process_logging"]

NOISY_LOGGERS: Final = ("torch.distributed", "torch.multiprocessing", "transformers", "httpx")


def configure_process_logging(*, verbose: bool, prefix: str = "") -> None:
    """One line per record, ``prefix`` before each (``[process 1] ``): ``warning: …`` as a
    command says it; with ``verbose``, every level and the logger's name too."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(f"%(levelname)s {prefix}%(name)s: %(message)s")
        if verbose
        else _Plain(prefix)
    )
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)


class _Plain(logging.Formatter):
    """``warning: [process 1] the message``: the level in lower case, no logger name."""

    def __init__(self, prefix: str) -> None:
        super().__init__("%(message)s")
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {self.prefix}{super().format(record)}"
