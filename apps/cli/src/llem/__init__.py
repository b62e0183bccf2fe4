"""llem: measure what LLM inference costs.

The ``llem`` command, and for Python the same measurements without it::

    import llem

    result = llem.measure(llem.ExperimentConfig(n=20, max_new_tokens=32), progress=print)
    study = llem.run_study("study.yaml")

:func:`measure` and :func:`run_study` are :mod:`llem_harness`'s; importing ``llem`` loads
neither the command line (Typer, Rich) nor a framework (torch): names load on first use.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem_harness import (
        PrintProgress,
        ProgressEvent,
        RunFailedError,
        RunInterruptedError,
        StudyInterruptedError,
        installed_backends,
        load_experiment_config,
        measure,
        run_study,
    )
    from llem_schema import ExperimentConfig, ExperimentResult, StudyConfig, StudyResult

__all__ = [
    "ExperimentConfig",
    "ExperimentResult",
    "PrintProgress",
    "ProgressEvent",
    "RunFailedError",
    "RunInterruptedError",
    "StudyConfig",
    "StudyInterruptedError",
    "StudyResult",
    "installed_backends",
    "load_experiment_config",
    "measure",
    "run_study",
]

_FROM_SCHEMA = {"ExperimentConfig", "ExperimentResult", "StudyConfig", "StudyResult"}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("llem_schema" if name in _FROM_SCHEMA else "llem_harness")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
