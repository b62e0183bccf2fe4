"""Studies: many experiments, each in its own process, recorded in a manifest that survives
interruption, resumable, and summarised across cycles (``llem study``).

The modules, each with one job: :mod:`~llem.study.layout` (the study directory and its locks),
:mod:`~llem.study.spec` and :mod:`~llem.study.child` (one run in a child process),
:mod:`~llem.study.launcher` (starting and signalling children), :mod:`~llem.study.gaps`
(thermal settling), :mod:`~llem.study.display` (progress), :mod:`~llem.study.runner` (the run
loop), :mod:`~llem.study.resume` (settling and carrying runs over), :mod:`~llem.study.results`
(finding results, ``study.json``), :mod:`~llem.study.session` (a study from start to end),
:mod:`~llem.study.dry_run`, :mod:`~llem.study.show` and :mod:`~llem.study.devices`.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem.study.session import (
        LoadedStudy,
        RunOptions,
        StudyOutcome,
        load_study,
        resume_study,
        start_study,
    )

__all__ = [
    "LoadedStudy",
    "RunOptions",
    "StudyOutcome",
    "load_study",
    "resume_study",
    "start_study",
]


def __getattr__(name: str) -> object:
    # Lazy, so a run's child process (``python -m llem.study.child``) starts without them.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("llem.study.session"), name)
