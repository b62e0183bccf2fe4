"""Studies: many experiments, each in its own process, recorded in a manifest that survives
interruption, resumable, and summarised across cycles.

The modules, each with one job: :mod:`~llem_harness.study.layout` (the study directory and
its locks), :mod:`~llem_harness.study.spec` and :mod:`~llem_harness.study.child` (one run in
a child process), :mod:`~llem_harness.study.launcher` (starting and signalling children),
:mod:`~llem_harness.study.gaps` (thermal settling), :mod:`~llem_harness.study.display`
(progress), :mod:`~llem_harness.study.runner` (the run loop),
:mod:`~llem_harness.study.resume` (settling and carrying runs over),
:mod:`~llem_harness.study.results` (finding results, ``study.json``),
:mod:`~llem_harness.study.session` (a study from start to end),
:mod:`~llem_harness.study.dry_run` (estimates) and :mod:`~llem_harness.study.devices`.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem_harness.study.session import (
        LoadedStudy,
        RunOptions,
        StudyOutcome,
        load_study,
        resume_study,
        run_study,
        start_study,
        study_from_config,
    )

__all__ = [
    "LoadedStudy",
    "RunOptions",
    "StudyOutcome",
    "load_study",
    "resume_study",
    "run_study",
    "start_study",
    "study_from_config",
]


def __getattr__(name: str) -> object:
    # Lazy, so a run's child process (``python -m llem_harness.study.child``) starts light.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("llem_harness.study.session"), name)
