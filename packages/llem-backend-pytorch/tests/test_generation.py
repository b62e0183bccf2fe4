"""Generation on the tiny model, on CPU, with real torch and transformers."""

import json
import shutil
import socket
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from llem_backend_pytorch import (
    FLOPS_METHOD,
    BackendError,
    BackendStateError,
    ModelNotFoundError,
    PyTorchBackend,
)
from llem_schema import ExperimentConfig, Request, RequestRecord

ConfigFactory = Callable[..., ExperimentConfig]


def _requests(prompts: list[str], first_index: int = 0) -> list[Request]:
    return [Request(index=first_index + i, prompt=prompt) for i, prompt in enumerate(prompts)]


def test_load_reports_what_it_placed_where(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    info = backend.load_on(make_config(), None)
    assert info.model == "llem/tiny"
    assert info.revision == "llem-tiny-v2-seed0"
    assert info.dtype == "float32"
    assert info.device == "cpu"
    assert info.device_indices == []
    assert info.device_uuids == []
    assert 0 < info.num_parameters < 2_000_000
    peak = backend.peak_memory()
    assert peak is not None
    assert peak.source == "rss"


def test_greedy_generation_is_deterministic(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(decoder={"ignore_eos": True}), None)
    backend.generate_batch(prompts, first_request_index=0)
    first = backend.last_output_token_ids
    backend.generate_batch(prompts, first_request_index=4)
    assert backend.last_output_token_ids == first
    assert len({tuple(ids) for ids in first}) > 1


def test_sampling_is_reproducible_for_a_seed(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    def sample(seed: int, first_request_index: int = 0) -> list[list[int]]:
        decoder = {"mode": "sampling", "ignore_eos": True, "top_k": 0}
        backend.load_on(make_config(seed=seed, decoder=decoder), None)
        backend.generate_batch(prompts, first_request_index=first_request_index)
        return backend.last_output_token_ids

    first = sample(7)
    torch.manual_seed(12345)  # whatever ran before must not matter
    assert sample(7) == first
    assert sample(8) != first
    assert sample(7, first_request_index=4) != first


def test_ignore_eos_gives_exactly_max_new_tokens(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(max_new_tokens=12, decoder={"ignore_eos": True}), None)
    timings = backend.generate_batch(prompts, first_request_index=0)
    assert [timing.output_tokens for timing in timings] == [12] * len(prompts)


def test_timings_are_consistent(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(max_new_tokens=6, decoder={"ignore_eos": True}), None)
    timings = backend.generate_batch(prompts, first_request_index=40)
    assert [timing.request_index for timing in timings] == [40, 41, 42, 43]
    for timing in timings:
        assert len(timing.token_times_s) == timing.output_tokens == 6
        assert all(a <= b for a, b in pairwise([timing.start_s, *timing.token_times_s]))
        record = RequestRecord.from_timing(timing)
        assert record.ttft_ms is not None
        assert record.ttft_ms > 0
        assert len(record.itl_ms) == 5
    # one batch: every request starts together and receives each step's token together
    assert len({timing.start_s for timing in timings}) == 1
    assert len({tuple(timing.token_times_s) for timing in timings}) == 1


def test_batch_is_left_padded_and_input_tokens_exclude_padding(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(), None)
    assert backend.tokenizer.padding_side == "left"
    timings = backend.generate_batch(prompts, first_request_index=0)
    expected = [backend.count_tokens(prompt) for prompt in prompts]
    assert [timing.input_tokens for timing in timings] == expected
    assert len(set(expected)) == len(expected)
    encoded = backend.tokenizer(prompts, padding=True)["attention_mask"]
    shortest = encoded[expected.index(min(expected))]
    assert shortest[0] == 0
    assert shortest[-1] == 1


def test_batched_greedy_matches_one_prompt_at_a_time(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(decoder={"ignore_eos": True}), None)
    backend.generate_batch(prompts, first_request_index=0)
    batched = backend.last_output_token_ids
    alone = []
    for index, prompt in enumerate(prompts):
        backend.generate_batch([prompt], first_request_index=index)
        alone.extend(backend.last_output_token_ids)
    assert batched == alone


def test_prompts_are_truncated_to_max_input_tokens(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    backend.load_on(make_config(max_input_tokens=16), None)
    long_prompt = "the quick brown fox jumps over the lazy dog " * 20
    (timing,) = backend.generate_batch([long_prompt], first_request_index=0)
    assert backend.count_tokens(long_prompt) > 16
    assert timing.input_tokens == 16


def _with_eos(tiny_dir: Path, destination: Path, eos_token_id: int) -> Path:
    shutil.copytree(tiny_dir, destination)
    path = destination / "generation_config.json"
    generation = json.loads(path.read_text())
    generation["eos_token_id"] = eos_token_id
    path.write_text(json.dumps(generation))
    return destination


def test_each_request_stops_at_its_own_eos(
    backend: PyTorchBackend,
    make_config: ConfigFactory,
    prompts: list[str],
    tiny_dir: Path,
    tmp_path: Path,
) -> None:
    max_new = 10
    backend.load_on(
        make_config(max_new_tokens=max_new, decoder={"ignore_eos": True}), device_index=None
    )
    backend.generate_batch(prompts, first_request_index=0)
    free_running = backend.last_output_token_ids
    # Make the token that row 0 produces third the model's EOS: row 0 must stop there and
    # every row must stop at its own first occurrence of that token, or run to the limit.
    eos = free_running[0][2]
    expected = [ids.index(eos) + 1 if eos in ids else max_new for ids in free_running]
    assert expected[0] == free_running[0].index(eos) + 1 <= 3
    assert len(set(expected)) > 1, "pick prompts whose outputs differ"

    model_dir = _with_eos(tiny_dir, tmp_path / "tiny-eos", eos)
    backend.load_on(make_config(model=str(model_dir), max_new_tokens=max_new), None)
    timings = backend.generate_batch(prompts, first_request_index=0)
    assert [timing.output_tokens for timing in timings] == expected
    assert [len(timing.token_times_s) for timing in timings] == expected
    for ids, count, free in zip(backend.last_output_token_ids, expected, free_running, strict=True):
        assert ids == free[:count]

    backend.load_on(
        make_config(model=str(model_dir), max_new_tokens=max_new, decoder={"ignore_eos": True}),
        device_index=None,
    )
    timings = backend.generate_batch(prompts, first_request_index=0)
    assert [timing.output_tokens for timing in timings] == [max_new] * len(prompts)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_half_precisions_load_with_those_weights(
    backend: PyTorchBackend,
    make_config: ConfigFactory,
    prompts: list[str],
    precision: str,
    dtype: torch.dtype,
) -> None:
    info = backend.load_on(make_config(precision=precision), None)
    assert info.dtype == str(dtype).removeprefix("torch.")
    assert {parameter.dtype for parameter in backend.model.parameters()} == {dtype}
    timings = backend.generate_batch(prompts[:2], first_request_index=0)
    assert all(timing.output_tokens > 0 for timing in timings)


def test_warmup_returns_timings(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(pytorch={"batch_size": 4}), None)
    timings = backend.warmup(_requests(prompts))
    assert [timing.request_index for timing in timings] == [0, 1, 2, 3]
    assert all(timing.output_tokens > 0 for timing in timings)
    assert backend.generate_batch([], first_request_index=0) == []
    assert list(backend.run([])) == []


_SEVEN_PROMPTS = [
    "Why is the sky blue?",
    "Hi",
    "Name three prime numbers.",
    "Write a Python function that reverses a list.",
    "What is entropy?",
    "Explain how a refrigerator keeps food cold.",
    "Define a derivative in one sentence.",
]


def test_run_cuts_the_requests_into_batches_and_keeps_their_indices(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    decoder = {"mode": "sampling", "ignore_eos": True, "top_k": 0}
    backend.load_on(make_config(seed=3, decoder=decoder, pytorch={"batch_size": 3}), None)
    requests = _requests(_SEVEN_PROMPTS, first_index=20)
    timings = []
    tokens_by_batch: dict[int, list[list[int]]] = {}
    for timing in backend.run(requests):
        timings.append(timing)
        # run yields a batch's timings as soon as that batch is done, before the next starts
        tokens_by_batch.setdefault(timing.batch_index, backend.last_output_token_ids)
    assert [timing.request_index for timing in timings] == list(range(20, 27))
    assert [timing.batch_index for timing in timings] == [0, 0, 0, 1, 1, 1, 2]
    assert [len(tokens_by_batch[batch]) for batch in (0, 1, 2)] == [3, 3, 1]
    for batch, first in ((0, 0), (1, 3), (2, 6)):
        in_batch = [timing for timing in timings if timing.batch_index == batch]
        assert len({timing.start_s for timing in in_batch}) == 1
        assert [timing.input_tokens for timing in in_batch] == [
            backend.count_tokens(prompt) for prompt in _SEVEN_PROMPTS[first : first + 3]
        ]
    starts = [timing.start_s for timing in timings[::3]]
    assert starts == sorted(set(starts))
    assert timings[3].start_s >= max(timings[0].token_times_s)

    # Sampling is seeded by each batch's first request index: generating a batch on its own
    # gives the tokens run gave it, whatever ran before.
    for batch, first in ((2, 6), (0, 0), (1, 3)):
        alone = backend.generate_batch(
            _SEVEN_PROMPTS[first : first + 3], first_request_index=20 + first
        )
        assert [timing.request_index for timing in alone] == list(
            range(20 + first, 20 + min(first + 3, 7))
        )
        assert backend.last_output_token_ids == tokens_by_batch[batch]
    backend.generate_batch(_SEVEN_PROMPTS[:3], first_request_index=21)
    assert backend.last_output_token_ids != tokens_by_batch[0]


def test_run_carries_request_indices_that_are_not_consecutive(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(max_new_tokens=2, pytorch={"batch_size": 2}), None)
    indices = [17, 3, 250, 4]
    requests = [
        Request(index=index, prompt=prompt) for index, prompt in zip(indices, prompts, strict=True)
    ]
    timings = list(backend.run(requests))
    assert [timing.request_index for timing in timings] == indices
    assert [timing.batch_index for timing in timings] == [0, 0, 1, 1]


def test_load_max_concurrency_bounds_the_batch(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    config = make_config(max_new_tokens=2, load={"max_concurrency": 2}, pytorch={"batch_size": 3})
    backend.load_on(config, None)
    timings = list(backend.run(_requests(_SEVEN_PROMPTS)))
    assert [timing.batch_index for timing in timings] == [0, 0, 1, 1, 2, 2, 3]
    assert [t.request_index for t in backend.warmup(_requests(_SEVEN_PROMPTS))] == [0, 1]


def test_warmup_runs_only_the_first_batch(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    backend.load_on(make_config(decoder={"ignore_eos": True}, pytorch={"batch_size": 2}), None)
    timings = backend.warmup(_requests(_SEVEN_PROMPTS, first_index=9))
    assert [timing.request_index for timing in timings] == [9, 10]
    assert [timing.batch_index for timing in timings] == [0, 0]
    assert len(backend.last_output_token_ids) == 2
    assert [timing.output_tokens for timing in timings] == [8, 8]
    # the harness hands over the requests after those already warmed up
    later = backend.warmup(_requests(_SEVEN_PROMPTS[2:], first_index=11))
    assert [timing.request_index for timing in later] == [11, 12]
    # fewer requests than a batch: all of them
    (last,) = backend.warmup(_requests(_SEVEN_PROMPTS[6:], first_index=15))
    assert last.request_index == 15


def test_memory_sync_and_flops(
    backend: PyTorchBackend, make_config: ConfigFactory, prompts: list[str]
) -> None:
    backend.load_on(make_config(decoder={"ignore_eos": True}), None)
    backend.synchronize()
    timings = backend.generate_batch(prompts, first_request_index=0)
    backend.synchronize()
    peak = backend.peak_memory()
    assert peak is not None
    assert peak.source == "rss"
    assert peak.mb > 10.0
    records = [RequestRecord.from_timing(timing) for timing in timings]
    estimate = backend.estimate_flops(records)
    assert estimate is not None
    assert estimate.method == FLOPS_METHOD
    model = backend.model
    embedding = model.get_input_embeddings()
    assert isinstance(embedding, torch.nn.Embedding)
    matmul = model.num_parameters() - embedding.weight.numel()
    layers, width = model.config.num_hidden_layers, model.config.hidden_size
    expected = 0.0
    for record in records:
        processed = record.input_tokens + record.output_tokens - 1
        expected += 2 * matmul * processed + 4 * layers * width * processed * (processed + 1) / 2
    assert estimate.total_flops == pytest.approx(expected)


def test_calls_before_load_and_after_unload_are_clear_errors(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    with pytest.raises(BackendStateError, match=r"^no model is loaded: call load\(\) first$"):
        backend.generate_batch(["hi"], first_request_index=0)
    with pytest.raises(BackendStateError, match=r"^no model is loaded: call load\(\) first$"):
        list(backend.run(_requests(["hi"])))
    with pytest.raises(BackendStateError, match=r"^no model is loaded: call load\(\) first$"):
        backend.warmup(_requests(["hi"]))
    backend.load_on(make_config(), None)
    backend.unload()
    with pytest.raises(BackendStateError, match="call load"):
        backend.peak_memory()
    with pytest.raises(BackendStateError, match="call load"):
        backend.count_tokens("hi")
    backend.unload()  # twice is fine


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_a_missing_local_directory_is_a_one_line_error(
    backend: PyTorchBackend, make_config: ConfigFactory, tmp_path: Path, no_network: list[object]
) -> None:
    missing = tmp_path / "models" / "nowhere"
    with pytest.raises(ModelNotFoundError) as caught:
        backend.load_on(make_config(model=str(missing)), None)
    message = str(caught.value)
    assert message == (
        f"model directory {missing} does not exist; point model to a directory holding "
        "config.json and the weights, or to a hub id already in the local cache"
    )
    assert no_network == []


def test_a_directory_without_config_is_a_one_line_error(
    backend: PyTorchBackend, make_config: ConfigFactory, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match=r"has no config.json; point model to a directory"):
        backend.load_on(make_config(model=str(tmp_path)), None)


def test_a_hub_id_not_in_the_cache_is_a_one_line_error_without_network(
    backend: PyTorchBackend, make_config: ConfigFactory, no_network: list[object]
) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        backend.load_on(make_config(model="llem-tests/not-a-real-model"), None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "model 'llem-tests/not-a-real-model' is not a local directory and not in the Hugging "
        "Face cache ("
    )
    assert message.endswith(
        "llem never downloads: fetch it first with `hf download llem-tests/not-a-real-model`, "
        "or set model to a local directory"
    )
    assert no_network == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_asking_for_cuda_without_it_is_a_clear_error(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    with pytest.raises(BackendError, match=r"^CUDA device 0 was asked for but torch sees no CUDA"):
        backend.load_on(make_config(), 0)
