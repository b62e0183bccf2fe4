"""The backend interface: everything an inference engine implements to be measured by llem.

A backend team depends on ``llem-schema`` alone. A backend is a plain class (structural: no
llem base class) registered under its name in the entry-point group ``llem.backends``; it
declares a pydantic model for its own settings (:attr:`InferenceBackend.settings_model`),
which sit under its name in a config file.

The harness drives it, in each worker process, in this order::

    prepare(config)          once, in the launching process, before any worker starts
    load(config, context)    -> ModelInfo: the model, and the devices it was placed on
    count_tokens(text)       when prompts must be built to a token length (synthetic)
    warmup(requests)         as often as the warmup policy asks, outside the energy window
    synchronize()            right before the energy window opens
    run(requests)            every request of this process, timings as they complete
    synchronize()            right before the window closes
    peak_memory(), estimate_flops(records), unload()

One call, :meth:`InferenceBackend.run`, serves the three kinds of engine llem measures: a
local batch loop (it cuts the requests into batches itself), an engine that takes every
request at once and schedules them itself, and a client that sends each request to a server
at its :attr:`Request.scheduled_s`. The harness hands over all of a process's requests in one
call and never needs to know which kind it drives.
"""

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from pydantic import (
    BaseModel,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from llem_schema._base import FrozenModel
from llem_schema.config import ExperimentConfig
from llem_schema.measurement import FlopsEstimate
from llem_schema.records import RequestRecord, RequestTiming

__all__ = ["InferenceBackend", "ModelInfo", "PeakMemory", "Request", "WorkerContext"]


class Request(FrozenModel):
    """One request the harness hands a backend."""

    index: NonNegativeInt = Field(
        description="Index of the request in the experiment; its timing carries it back."
    )
    prompt: str = Field(description="The prompt text, before the backend's truncation.")
    scheduled_s: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "When to send it, s after run() is called, for a client of a server under an "
            "arrival schedule; None: as soon as the backend can take it."
        ),
    )


class WorkerContext(FrozenModel):
    """Where a worker process sits among the experiment's processes."""

    process_index: NonNegativeInt = Field(description="Rank of this process, 0-based.")
    num_processes: PositiveInt = Field(description="Processes of the experiment.")
    local_index: NonNegativeInt = Field(
        default=0, description="Rank of this process among those on its host."
    )
    local_count: PositiveInt = Field(default=1, description="Processes on this host.")
    files_dir: str | None = Field(
        default=None,
        description=(
            "A directory for files the backend wants kept beside the result (a server's log); "
            "None: nowhere to keep any."
        ),
    )

    @model_validator(mode="after")
    def _inside(self) -> "WorkerContext":
        if self.process_index >= self.num_processes or self.local_index >= self.local_count:
            raise ValueError("a process index must be smaller than the process count")
        return self


class ModelInfo(FrozenModel):
    """What ``load`` placed where; kept in each process's raw result."""

    model: str = Field(description="Model name or path as loaded.")
    revision: str | None = Field(default=None, description="Commit or version of the weights.")
    num_parameters: NonNegativeInt = Field(description="Parameter count (0 where unknown).")
    dtype: str = Field(description="Weight dtype, e.g. 'bfloat16'.")
    device: str = Field(description="Where inference runs: 'cpu', 'cuda:0', a server's URL.")
    device_indices: list[NonNegativeInt] = Field(
        default_factory=list,
        description=(
            "CUDA ordinals holding the model, as this process sees them (after "
            "CUDA_VISIBLE_DEVICES); empty when no local GPU holds it."
        ),
    )
    device_uuids: list[str] = Field(
        default_factory=list,
        description=(
            "The same GPUs by UUID as NVML names them ('GPU-...'), from the framework; the "
            "harness meters exactly these. Empty when no local GPU holds the model."
        ),
    )
    devices_unknown: bool = Field(
        default=False,
        description=(
            "The model runs on this host's GPUs, in another process (a server), on GPUs the "
            "backend cannot name: every GPU is metered unless energy.devices names them."
        ),
    )
    details: dict[str, JsonValue] = Field(
        default_factory=dict,
        description=(
            "What else the backend tells of how it ran (a server's URL and version); "
            "'managed': true says the model runs in a process the backend started, a child of "
            "the worker, so its compute contexts are the run's own."
        ),
    )
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            "What the backend noticed that a reader of the figures must know (a server on "
            "another host, whose energy is not measured); kept as measurement warnings of "
            "code `backend`."
        ),
    )

    @model_validator(mode="after")
    def _uuids_name_gpus(self) -> "ModelInfo":
        for uuid in self.device_uuids:
            if not uuid.startswith(("GPU-", "MIG-")):
                raise ValueError(f"device_uuids: {uuid!r} is not an NVML UUID ('GPU-...')")
        if len(set(self.device_uuids)) != len(self.device_uuids):
            raise ValueError("device_uuids names a GPU twice")
        if self.devices_unknown and self.device_uuids:
            raise ValueError("devices_unknown means no device_uuids can be given")
        return self


class PeakMemory(FrozenModel):
    """Peak memory of a process's inference, and what was measured."""

    mb: NonNegativeFloat = Field(description="Peak memory, MiB.")
    source: str = Field(
        min_length=1,
        description="What was measured: 'cuda' (peak allocated device memory), 'rss' (peak "
        "resident set of the process), or the backend's own name for it.",
    )


@runtime_checkable
class InferenceBackend(Protocol):
    """An inference engine llem can measure. Structural: no base class to inherit.

    The class is what the ``llem.backends`` entry point names; the harness constructs it with
    no arguments, once per process.
    """

    @property
    def settings_model(self) -> type[BaseModel]:
        """The pydantic model of this backend's settings (the config section under its
        name), readable from the class: ``settings_model = MySettings`` in its body. Make it
        frozen with ``extra="forbid"`` so that a misspelt key is an error."""
        ...

    @property
    def name(self) -> str:
        """The backend's name, as in ``ExperimentConfig.backend`` (``pytorch``)."""
        ...

    @property
    def version(self) -> str:
        """Versions of the engine and what it runs on, e.g. ``transformers 4.57; torch 2.9``."""
        ...

    def prepare(self, config: ExperimentConfig) -> None:
        """Work to do once, in the launching process, before any worker starts (build or
        check the model); raise a :class:`~llem_schema.LlemError` for a config that cannot
        run, before anything is measured."""
        ...

    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        """Load the model for ``config`` in the process ``context`` describes, choosing its
        devices (for example ``cuda:<local_index>``), and say where it went. The settings
        are ``config.backend_settings(self.settings_model)``."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """Input tokens ``text`` becomes, special tokens included; None where this backend
        cannot count them (synthetic prompts then cannot be built)."""
        ...

    def warmup(self, requests: Sequence[Request]) -> Sequence[RequestTiming]:
        """Run one unmeasured step (a batch, say) over the first of ``requests`` and return
        the timings of those it ran, at least one. The harness calls it as often as the
        warmup policy asks, each time with the requests after the ones already run (starting
        over at the end), and judges convergence from the timings."""
        ...

    def run(self, requests: Sequence[Request]) -> Iterable[RequestTiming]:
        """Run every request, returning (or yielding, as they complete) one timing per
        request, each carrying its :attr:`Request.index`. Token times are on
        ``time.perf_counter()``'s clock. The harness counts progress as timings arrive."""
        ...

    def synchronize(self) -> None:
        """Wait until the devices have finished all queued work (energy window edges)."""
        ...

    def peak_memory(self) -> PeakMemory | None:
        """Peak memory since load; None where unknown."""
        ...

    def estimate_flops(self, requests: Sequence[RequestRecord]) -> FlopsEstimate | None:
        """FLOPs of the measured ``requests``, with the method named; None if unknown."""
        ...

    def unload(self) -> None:
        """Free the model and the device memory it held."""
        ...
