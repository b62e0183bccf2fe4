"""Logging set-up for the ``llem`` processes (library code never adds handlers)."""

import logging

__all__ = ["configure_logging"]

_NOISY = ("torch.distributed", "torch.multiprocessing", "transformers", "httpx")


def configure_logging(*, verbose: bool) -> None:
    """Warnings (debug with ``-v``) from llem; third-party launch chatter only with ``-v``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
