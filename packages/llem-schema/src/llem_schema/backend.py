"""The backend interface: everything an inference engine implements to be measured by llem.

A backend team depends on ``llem-schema`` alone. The harness calls, in order: ``load`` once,
``warmup`` as often as the warmup policy asks, ``synchronize`` before the energy window
opens, ``run_batch`` for every batch, ``synchronize`` before the window closes, then
``peak_memory_mb``, ``estimate_flops`` and finally ``unload``.
"""

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import Field, NonNegativeInt

from llem_schema._base import FrozenModel
from llem_schema.config import ExperimentConfig
from llem_schema.measurement import FlopsEstimate
from llem_schema.records import RequestRecord, RequestTiming

__all__ = ["InferenceBackend", "ModelInfo"]


class ModelInfo(FrozenModel):
    """What ``load`` placed where."""

    model: str = Field(description="Model name or path as loaded.")
    revision: str | None = Field(default=None, description="Commit or version of the weights.")
    num_parameters: NonNegativeInt = Field(description="Parameter count.")
    dtype: str = Field(description="Weight dtype, e.g. 'bfloat16'.")
    device: str = Field(description="Where inference runs: 'cpu', 'cuda:0', ...")
    device_indices: list[NonNegativeInt] = Field(
        default_factory=list,
        description=(
            "CUDA device ordinals holding the model, as this process sees them (after "
            "CUDA_VISIBLE_DEVICES); empty on CPU. The harness maps them to NVML devices."
        ),
    )


@runtime_checkable
class InferenceBackend(Protocol):
    """An inference engine llem can measure. Structural: no base class to inherit."""

    @property
    def name(self) -> str:
        """Short backend name, as in ``ExperimentConfig.backend`` (``pytorch``)."""
        ...

    @property
    def version(self) -> str:
        """Versions of the engine and what it runs on, e.g. ``transformers 4.57; torch 2.9``."""
        ...

    def load(self, config: ExperimentConfig, *, device_index: int | None) -> ModelInfo:
        """Load model and tokenizer for ``config`` on accelerator ``device_index`` (None: CPU)."""
        ...

    def warmup(self, prompts: Sequence[str]) -> list[RequestTiming]:
        """Run one unmeasured batch; the harness uses its timings to judge convergence."""
        ...

    def run_batch(self, prompts: Sequence[str], *, first_request_index: int) -> list[RequestTiming]:
        """Generate for one batch and return one timing per prompt, in order.

        ``request_index`` of the i-th timing is ``first_request_index + i``; token times are
        on ``time.perf_counter()``'s clock.
        """
        ...

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work (energy window edges)."""
        ...

    def peak_memory_mb(self) -> float | None:
        """Peak memory since load, MiB: device memory on accelerators, RSS on CPU."""
        ...

    def estimate_flops(self, requests: Sequence[RequestRecord]) -> FlopsEstimate | None:
        """FLOPs of the measured ``requests``, with the method named; None if unknown."""
        ...

    def unload(self) -> None:
        """Free the model and the device memory it held."""
        ...
