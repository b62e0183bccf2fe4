"""The echo backend: a local batch loop, as the PyTorch backend is, without a model."""

import time
from collections.abc import Iterator, Sequence
from typing import Final

from pydantic import Field

from llem_schema import (
    ExperimentConfig,
    FlopsEstimate,
    FrozenModel,
    ModelInfo,
    PeakMemory,
    Request,
    RequestRecord,
    RequestTiming,
    WorkerContext,
)

__all__ = ["EchoBackend", "EchoSettings"]

VERSION: Final = "0.1.0"


class EchoSettings(FrozenModel):
    """The ``echo:`` section of a config (frozen, unknown keys refused, like every setting)."""

    batch_size: int = Field(default=4, gt=0, description="Requests echoed together per step.")
    token_delay_ms: float = Field(
        default=1.0, ge=0.0, le=1000.0, description="Time each output token takes, ms."
    )


class EchoBackend:
    """Echoes each prompt's words back; implements :class:`llem_schema.InferenceBackend`."""

    settings_model = EchoSettings

    def __init__(self) -> None:
        self._config: ExperimentConfig | None = None
        self._settings = EchoSettings()

    @property
    def name(self) -> str:
        return "echo"

    @property
    def version(self) -> str:
        return f"echo {VERSION}"

    def prepare(self, config: ExperimentConfig) -> None:
        config.backend_settings(EchoSettings)  # a bad setting stops the run before it starts

    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        self._config = config
        self._settings = config.backend_settings(EchoSettings)
        return ModelInfo(model=config.model, num_parameters=0, dtype="none", device="cpu")

    def count_tokens(self, text: str) -> int | None:
        return len(text.split())

    def warmup(self, requests: Sequence[Request]) -> Sequence[RequestTiming]:
        return self._step(requests[: self._settings.batch_size], batch_index=0)

    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        size = self._settings.batch_size
        for batch_index, start in enumerate(range(0, len(requests), size)):
            yield from self._step(requests[start : start + size], batch_index=batch_index)

    def synchronize(self) -> None:
        return None  # nothing runs in the background

    def peak_memory(self) -> PeakMemory | None:
        return None

    def estimate_flops(self, requests: Sequence[RequestRecord]) -> FlopsEstimate | None:
        return FlopsEstimate(total_flops=0.0, method="echo does no arithmetic")

    def unload(self) -> None:
        self._config = None

    def _step(self, requests: Sequence[Request], *, batch_index: int) -> list[RequestTiming]:
        """One batch: every request starts together; a token of each comes per delay."""
        if self._config is None:
            raise RuntimeError("echo backend: load() first")
        config, delay_s = self._config, self._settings.token_delay_ms / 1000.0
        words = [request.prompt.split()[: config.max_input_tokens] for request in requests]
        if config.decoder.ignore_eos:  # every request gives exactly max_new_tokens
            counts = [config.max_new_tokens if w else 0 for w in words]
        else:
            counts = [min(len(w), config.max_new_tokens) for w in words]
        start = time.perf_counter()
        times: list[list[float]] = [[] for _ in requests]
        for position in range(max(counts, default=0)):
            time.sleep(delay_s)
            now = time.perf_counter()
            for row, count in enumerate(counts):
                if position < count:
                    times[row].append(now)
        return [
            RequestTiming(
                request_index=request.index,
                batch_index=batch_index,
                input_tokens=len(words[row]),
                output_tokens=counts[row],
                start_s=start,
                token_times_s=times[row],
            )
            for row, request in enumerate(requests)
        ]
