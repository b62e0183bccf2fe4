"""The echo backend's own tests: llem_schema is all they (and it) need."""

import pytest
from llem_echo import EchoBackend, EchoSettings

from llem_schema import (
    ConfigError,
    InferenceBackend,
    Request,
    RequestRecord,
    WorkerContext,
    parse_config,
)

BACKENDS = {"echo": EchoSettings}
ALONE = WorkerContext(process_index=0, num_processes=1)


def test_it_is_a_backend() -> None:
    backend: InferenceBackend = EchoBackend()
    assert isinstance(backend, InferenceBackend)
    assert backend.settings_model is EchoSettings


def test_it_echoes_words_in_batches_with_real_token_times() -> None:
    config = parse_config(
        {"backend": "echo", "max_new_tokens": 3, "echo": {"batch_size": 2, "token_delay_ms": 1}},
        backends=BACKENDS,
    )
    backend = EchoBackend()
    backend.prepare(config)
    backend.load(config, ALONE)
    requests = [Request(index=i, prompt=p) for i, p in enumerate(["a b c d", "e", "f g"])]
    timings = list(backend.run(requests))
    records = [RequestRecord.from_timing(t) for t in timings]
    assert [(r.request_index, r.batch_index, r.output_tokens) for r in records] == [
        (0, 0, 3),
        (1, 0, 1),
        (2, 1, 2),
    ]
    assert all(r.ttft_ms is not None and r.ttft_ms >= 1.0 for r in records)
    assert len(backend.warmup(requests)) == 2  # one step: the first batch


def test_a_misspelt_setting_is_named() -> None:
    config = parse_config({"backend": "echo", "echo": {"batch_sise": 2}})
    with pytest.raises(ConfigError, match=r"^unknown config key 'echo.batch_sise'; did you mean"):
        EchoBackend().prepare(config)
