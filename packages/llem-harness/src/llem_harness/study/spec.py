"""What the study gives each child process: :class:`ChildSpec` (``runs/run_0003.json``)."""

from pathlib import Path
from typing import Self

from pydantic import Field

from llem_schema import ExperimentConfig, ExperimentId, FrozenModel
from llem_schema.io import atomic_write_bytes

__all__ = ["ChildSpec", "SpecFile"]


class SpecFile(FrozenModel):
    """What a process llem starts reads from a JSON file: written atomically, read whole."""

    def save(self, path: Path) -> None:
        """Write the spec atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, self.model_dump_json(indent=2).encode("utf-8") + b"\n")

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.model_validate_json(path.read_bytes())


class ChildSpec(SpecFile):
    """One run of a study, as its child process runs it."""

    config: ExperimentConfig = Field(
        description="The point's experiment config, output_dir set to the study directory."
    )
    experiment_id: ExperimentId = Field(
        description="Chosen by the study and written into the manifest before the run starts."
    )
    study_id: ExperimentId = Field(description="The study the run is recorded under.")
    run_index: int = Field(ge=0, description="The run's index in the manifest.")
    store_path: str | None = Field(
        description="The results store the run is recorded in; None: none."
    )
    index_path: str | None = Field(
        default=None,
        description=(
            "The store the study indexes its runs in when the child writes none (a Slurm job: "
            "the controller indexes); a resume finds it here."
        ),
    )
    parent_pid: int | None = Field(
        description=(
            "PID of the llem study process; the child stops when that process dies. None: a "
            "Slurm job, which lives on without the study process (Slurm looks after it)."
        )
    )
    device: str | None = Field(
        default=None,
        description="CUDA_VISIBLE_DEVICES the child is pinned to (--parallel); None: inherited.",
    )
    verbose: bool = Field(default=False, description="Debug logs into the run's log.")
