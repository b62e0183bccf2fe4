"""The pyarrow path of the latency statistics gives llem_schema's numbers, and numpy's."""

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llem_persistence import aggregate_results
from llem_persistence._stats import latency_metrics, latency_stats
from llem_schema import LatencyMetrics, LatencyStats, RequestRecord
from llem_schema.testing import example_config, example_raw_result, example_requests

FIELDS = ("mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")
REL = 1e-12

latencies = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=300
)


def assert_same(fast: LatencyStats | None, reference: LatencyStats | None) -> None:
    """Equal count, min and max; the rest equal to rounding in the last bits."""
    if reference is None:
        assert fast is None
        return
    assert fast is not None
    assert fast.count == reference.count
    assert (fast.min_ms, fast.max_ms) == (reference.min_ms, reference.max_ms)
    scale = max(1.0, reference.max_ms)
    for name in FIELDS:
        got, want = getattr(fast, name), getattr(reference, name)
        assert math.isclose(got, want, rel_tol=REL, abs_tol=REL * scale), (name, got, want)


def assert_numpy(fast: LatencyStats | None, values: np.ndarray) -> None:
    assert fast is not None
    assert fast.count == values.size
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99], method="linear")
    expected = {
        "mean_ms": values.mean(),
        "median_ms": p50,
        "p90_ms": p90,
        "p95_ms": p95,
        "p99_ms": p99,
        "min_ms": values.min(),
        "max_ms": values.max(),
    }
    scale = max(1.0, float(values.max()))
    for name, want in expected.items():
        got = getattr(fast, name)
        assert math.isclose(got, float(want), rel_tol=REL, abs_tol=REL * scale), (name, got, want)


@given(latencies)
def test_fast_stats_equal_the_schema_definition_and_numpy(values: list[float]) -> None:
    fast = latency_stats(pa.array(values, type=pa.float64()))
    assert_same(fast, LatencyStats.from_values(values))
    assert_numpy(fast, np.array(values))


@pytest.mark.parametrize("seed", range(40))
def test_fast_stats_on_many_random_sizes_and_shapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.choice([1, 2, 3, 4, 5, 10, 99, 100, 101, 1000, 12_345, 100_001]))
    shape = seed % 4
    if shape == 0:
        values = rng.uniform(0.0, 50.0, size)
    elif shape == 1:  # heavy tail, as latencies have
        values = rng.lognormal(3.0, 1.5, size)
    elif shape == 2:  # many ties
        values = rng.integers(0, 5, size).astype(float)
    else:  # tiny and huge together
        values = rng.choice([0.0, 1e-9, 3.5, 1e6], size)
    fast = latency_stats(pa.array(values, type=pa.float64()))
    assert_same(fast, LatencyStats.from_values(values.tolist()))
    assert_numpy(fast, values)


def test_fast_stats_by_hand_and_of_nothing() -> None:
    stats = latency_stats(pa.array([40.0, 10.0, 30.0, 20.0]))
    assert stats is not None
    assert (stats.count, stats.mean_ms, stats.median_ms) == (4, 25.0, 25.0)
    assert stats.p90_ms == pytest.approx(37.0)
    assert stats.p99_ms == pytest.approx(39.7)
    assert (stats.min_ms, stats.max_ms) == (10.0, 40.0)
    assert latency_stats(pa.array([], type=pa.float64())) is None


def test_fast_stats_take_chunked_arrays_and_refuse_nulls() -> None:
    chunked = pa.chunked_array([[3.0, 1.0], [2.0], [5.0, 4.0]])
    assert_same(latency_stats(chunked), LatencyStats.from_values([3.0, 1.0, 2.0, 5.0, 4.0]))
    with pytest.raises(ValueError, match="nulls"):
        latency_stats(pa.array([1.0, None]))


def zero_and_one_token_requests() -> list[RequestRecord]:
    return [
        RequestRecord(
            request_index=0,
            batch_index=0,
            input_tokens=5,
            output_tokens=0,
            ttft_ms=None,
            e2e_ms=None,
            itl_ms=[],
        ),
        RequestRecord(
            request_index=1,
            batch_index=0,
            input_tokens=5,
            output_tokens=1,
            ttft_ms=12.5,
            e2e_ms=12.5,
            itl_ms=[],
        ),
    ]


@pytest.mark.parametrize("seed", range(10))
def test_fast_metrics_equal_the_schema_metrics(seed: int) -> None:
    requests = [*example_requests(50 + 37 * seed, seed=seed), *zero_and_one_token_requests()]
    fast = latency_metrics(requests)
    reference = LatencyMetrics.from_requests(requests)
    for name in ("ttft", "itl", "tpot", "e2e"):
        assert_same(getattr(fast, name), getattr(reference, name))


def test_fast_metrics_of_requests_without_tokens_are_none() -> None:
    metrics = latency_metrics(zero_and_one_token_requests()[:1])
    assert metrics == LatencyMetrics(ttft=None, itl=None, tpot=None, e2e=None)
    assert latency_metrics([]) == LatencyMetrics(ttft=None, itl=None, tpot=None, e2e=None)


def test_aggregation_latency_equals_the_schema_definition_on_the_concatenation() -> None:
    config = example_config()
    raws = [
        example_raw_result(process_index=i, num_processes=3, n_requests=40, seed=i)
        for i in range(3)
    ]
    result = aggregate_results(raws, effective_config=config.model_dump(mode="json"))
    reference = LatencyMetrics.from_requests(r for raw in raws for r in raw.requests)
    for name in ("ttft", "itl", "tpot", "e2e"):
        assert_same(getattr(result.latency, name), getattr(reference, name))
