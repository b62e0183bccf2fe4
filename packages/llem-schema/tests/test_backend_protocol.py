"""The backend interface is all a backend team implements: a plain class, no llem base class.

The echo backend here uses nothing but llem_schema and pydantic, as a third-party backend
does; the harness's own tests drive real backends through the whole lifecycle.
"""

import time
from collections.abc import Iterator, Sequence

import pytest
from pydantic import Field

from llem_schema import (
    ConfigError,
    ExperimentConfig,
    FlopsEstimate,
    FrozenModel,
    InferenceBackend,
    LatencyMetrics,
    ModelInfo,
    PeakMemory,
    Request,
    RequestRecord,
    RequestTiming,
    WorkerContext,
    parse_config,
)


class EchoSettings(FrozenModel):
    words_per_step: int = Field(default=2, gt=0, description="Requests echoed per step.")


class WordEchoBackend:
    """Generates by echoing the prompt's words back, one word per token, with real timings."""

    settings_model = EchoSettings

    def __init__(self) -> None:
        self._max_new_tokens = 0
        self._step = 1
        self.synchronized = 0

    @property
    def name(self) -> str:
        return "echo"

    @property
    def version(self) -> str:
        return "echo 1.0"

    def prepare(self, config: ExperimentConfig) -> None:
        config.backend_settings(EchoSettings)  # a bad setting fails before any worker starts

    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        self._max_new_tokens = config.max_new_tokens
        self._step = config.backend_settings(EchoSettings).words_per_step
        return ModelInfo(model=config.model, num_parameters=0, dtype="none", device="cpu")

    def count_tokens(self, text: str) -> int | None:
        return len(text.split())

    def warmup(self, requests: Sequence[Request]) -> Sequence[RequestTiming]:
        return list(self.run(requests[: self._step]))

    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        for offset in range(0, len(requests), self._step):
            for request in requests[offset : offset + self._step]:
                words = request.prompt.split()
                start = time.perf_counter()
                times = [time.perf_counter() for _ in words[: self._max_new_tokens]]
                yield RequestTiming(
                    request_index=request.index,
                    batch_index=offset // self._step,
                    input_tokens=len(words),
                    output_tokens=len(times),
                    start_s=start,
                    token_times_s=times,
                )

    def synchronize(self) -> None:
        self.synchronized += 1

    def peak_memory(self) -> PeakMemory | None:
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
    config = parse_config(
        {"backend": "echo", "max_new_tokens": 3, "echo": {"words_per_step": 2}},
        backends={"echo": backend.settings_model},
    )
    backend.prepare(config)
    info = backend.load(config, WorkerContext(process_index=0, num_processes=1))
    assert info.device == "cpu"
    assert info.device_uuids == []
    requests = [
        Request(index=10 + i, prompt=p) for i, p in enumerate(["one two three four", "five", ""])
    ]
    assert len(backend.warmup(requests)) == 2
    backend.synchronize()
    timings = list(backend.run(requests))
    backend.synchronize()
    records = [RequestRecord.from_timing(t) for t in timings]
    assert [r.request_index for r in records] == [10, 11, 12]
    assert [r.batch_index for r in records] == [0, 0, 1]
    assert [r.output_tokens for r in records] == [3, 1, 0]
    metrics = LatencyMetrics.from_requests(records)
    assert metrics.ttft is not None
    assert metrics.ttft.count == 2  # the empty prompt produced no token
    assert metrics.itl is not None
    assert metrics.itl.count == 2
    assert backend.estimate_flops(records) is not None
    backend.unload()


def test_a_backend_reads_its_settings_and_a_misspelt_one_names_the_key() -> None:
    config = parse_config({"backend": "echo", "echo": {"words_per_step": 3}})
    assert config.backend_settings(EchoSettings) == EchoSettings(words_per_step=3)
    assert parse_config({"backend": "echo"}).backend_settings(EchoSettings).words_per_step == 2
    with pytest.raises(ConfigError) as caught:
        parse_config({"backend": "echo", "echo": {"words_per_stp": 3}}).backend_settings(
            EchoSettings
        )
    assert str(caught.value) == (
        "unknown config key 'echo.words_per_stp'; did you mean 'words_per_step'? "
        "(allowed under echo: words_per_step)"
    )
    assert caught.value.key == "echo.words_per_stp"


def test_model_info_names_gpus_by_nvml_uuid() -> None:
    info = ModelInfo(
        model="m",
        num_parameters=1,
        dtype="bfloat16",
        device="cuda:0",
        device_indices=[0, 1],
        device_uuids=["GPU-aaaa", "GPU-bbbb"],
    )
    assert info.device_uuids == ["GPU-aaaa", "GPU-bbbb"]
    with pytest.raises(ValueError, match="is not an NVML UUID"):
        ModelInfo(model="m", num_parameters=1, dtype="x", device="cuda:0", device_uuids=["0"])


def test_a_worker_context_stays_inside_its_process_count() -> None:
    assert WorkerContext(process_index=1, num_processes=2, local_index=1, local_count=2)
    with pytest.raises(ValueError, match="smaller than the process count"):
        WorkerContext(process_index=2, num_processes=2)
