"""The backend interface is all a backend team implements: a plain class, no llem base class."""

import time
from collections.abc import Sequence

from llem_schema import (
    ExperimentConfig,
    FlopsEstimate,
    InferenceBackend,
    LatencyMetrics,
    ModelInfo,
    RequestRecord,
    RequestTiming,
)


class WordEchoBackend:
    """Generates by echoing the prompt's words back, one word per token, with real timings."""

    def __init__(self) -> None:
        self._max_new_tokens = 0
        self.synchronized = 0

    @property
    def name(self) -> str:
        return "echo"

    @property
    def version(self) -> str:
        return "echo 1.0"

    def load(self, config: ExperimentConfig, *, device_index: int | None) -> ModelInfo:
        self._max_new_tokens = config.max_new_tokens
        return ModelInfo(model=config.model, num_parameters=0, dtype="none", device="cpu")

    def warmup(self, prompts: Sequence[str]) -> list[RequestTiming]:
        return self.run_batch(prompts, first_request_index=0)

    def run_batch(self, prompts: Sequence[str], *, first_request_index: int) -> list[RequestTiming]:
        timings = []
        for offset, prompt in enumerate(prompts):
            words = prompt.split()
            start = time.perf_counter()
            times = [time.perf_counter() for _ in words[: self._max_new_tokens]]
            timings.append(
                RequestTiming(
                    request_index=first_request_index + offset,
                    input_tokens=len(words),
                    output_tokens=len(times),
                    start_s=start,
                    token_times_s=times,
                )
            )
        return timings

    def synchronize(self) -> None:
        self.synchronized += 1

    def peak_memory_mb(self) -> float | None:
        return None

    def estimate_flops(self, requests: Sequence[RequestRecord]) -> FlopsEstimate | None:
        return FlopsEstimate(total_flops=0.0, method="echo does no arithmetic")

    def unload(self) -> None:
        self._max_new_tokens = 0


def test_a_plain_class_satisfies_the_protocol() -> None:
    backend: InferenceBackend = WordEchoBackend()  # checked structurally by mypy
    assert isinstance(backend, InferenceBackend)
    assert not isinstance(object(), InferenceBackend)


def test_the_harness_sequence_gives_records_llem_can_summarise() -> None:
    backend: InferenceBackend = WordEchoBackend()
    info = backend.load(ExperimentConfig(max_new_tokens=3), device_index=None)
    assert info.device == "cpu"
    backend.warmup(["warm up once"])
    backend.synchronize()
    prompts = ["one two three four", "five", ""]
    timings = backend.run_batch(prompts, first_request_index=10)
    backend.synchronize()
    records = [RequestRecord.from_timing(t, batch_index=0) for t in timings]
    assert [r.request_index for r in records] == [10, 11, 12]
    assert [r.output_tokens for r in records] == [3, 1, 0]
    metrics = LatencyMetrics.from_requests(records)
    assert metrics.ttft is not None
    assert metrics.ttft.count == 2  # the empty prompt produced no token
    assert metrics.itl is not None
    assert metrics.itl.count == 2
    assert backend.estimate_flops(records) is not None
    backend.unload()
