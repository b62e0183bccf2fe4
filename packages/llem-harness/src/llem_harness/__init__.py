"""llem_harness: the measurement core of llem, as a library.

It takes an experiment from its config to a saved, indexed result: launch, per-process
measurement (model load, energy meter on the devices the backend used, baseline, warmup, the
energy window around inference), staging, late aggregation, save, index; and a study of many
experiments, each in its own process, resumable. Backends are found through the entry-point
group ``llem.backends``; the harness imports no backend, no framework and no UI.

>>> from llem_harness import measure
>>> from llem_schema import ExperimentConfig
>>> result = measure(ExperimentConfig(n=20, max_new_tokens=32), progress=print)
>>> result.output_tokens_per_s, result.efficiency.output_tokens_per_j
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem_harness.backends import (
        ENTRY_POINT_GROUP,
        BackendInfo,
        backend_class,
        create_backend,
        installed_backends,
    )
    from llem_harness.config import load_experiment_config, read_config_file
    from llem_harness.errors import (
        BackendLoadError,
        BackendNotFoundError,
        HarnessError,
        RunFailedError,
        RunInterruptedError,
        StudyInterruptedError,
        UsageError,
        WorkerFailedError,
    )
    from llem_harness.progress import PrintProgress, ProgressCallback, ProgressEvent
    from llem_harness.run import Measurement, measure, resolve_config, run_experiment
    from llem_harness.study.session import run_study

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "BackendLoadError",
    "BackendNotFoundError",
    "HarnessError",
    "Measurement",
    "PrintProgress",
    "ProgressCallback",
    "ProgressEvent",
    "RunFailedError",
    "RunInterruptedError",
    "StudyInterruptedError",
    "UsageError",
    "WorkerFailedError",
    "backend_class",
    "create_backend",
    "installed_backends",
    "load_experiment_config",
    "measure",
    "read_config_file",
    "resolve_config",
    "run_experiment",
    "run_study",
]

_EXPORTS: dict[str, str] = {
    "ENTRY_POINT_GROUP": "llem_harness.backends",
    "BackendInfo": "llem_harness.backends",
    "backend_class": "llem_harness.backends",
    "create_backend": "llem_harness.backends",
    "installed_backends": "llem_harness.backends",
    "load_experiment_config": "llem_harness.config",
    "read_config_file": "llem_harness.config",
    "BackendLoadError": "llem_harness.errors",
    "BackendNotFoundError": "llem_harness.errors",
    "HarnessError": "llem_harness.errors",
    "RunFailedError": "llem_harness.errors",
    "RunInterruptedError": "llem_harness.errors",
    "StudyInterruptedError": "llem_harness.errors",
    "UsageError": "llem_harness.errors",
    "WorkerFailedError": "llem_harness.errors",
    "PrintProgress": "llem_harness.progress",
    "ProgressCallback": "llem_harness.progress",
    "ProgressEvent": "llem_harness.progress",
    "Measurement": "llem_harness.run",
    "measure": "llem_harness.run",
    "resolve_config": "llem_harness.run",
    "run_experiment": "llem_harness.run",
    "run_study": "llem_harness.study.session",
}


def __getattr__(name: str) -> object:
    # Lazy, so that a study's run process and `llem --help` start without loading everything.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
