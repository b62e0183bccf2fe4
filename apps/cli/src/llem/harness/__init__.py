"""The harness: runs an experiment end to end (``llem run``)."""

from llem.harness.launch import WorkerFailedError
from llem.harness.run import RunFailedError, RunInterruptedError, run_experiment

__all__ = ["RunFailedError", "RunInterruptedError", "WorkerFailedError", "run_experiment"]
