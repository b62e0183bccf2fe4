import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from llem_schema import (
    EfficiencyMetrics,
    LatencyMetrics,
    LatencyStats,
    RequestRecord,
    RequestTiming,
)
from llem_schema.metrics import adjusted_energy_j, percentile

latencies = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=200
)


@given(latencies, st.floats(min_value=0.0, max_value=100.0))
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    expected = float(np.percentile(np.array(values), q, method="linear"))
    assert percentile(sorted(values), q) == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_latency_stats_by_hand() -> None:
    stats = LatencyStats.from_values([40.0, 10.0, 30.0, 20.0])
    assert stats is not None
    assert stats.count == 4
    assert stats.mean_ms == 25.0
    assert stats.median_ms == 25.0
    assert stats.p90_ms == pytest.approx(37.0)  # 30 + 0.7 x 10
    assert stats.p99_ms == pytest.approx(39.7)
    assert (stats.min_ms, stats.max_ms) == (10.0, 40.0)


def test_latency_stats_of_nothing_is_none() -> None:
    assert LatencyStats.from_values([]) is None


@given(latencies)
def test_latency_stats_match_numpy(values: list[float]) -> None:
    stats = LatencyStats.from_values(values)
    assert stats is not None
    array = np.array(values)
    assert stats.mean_ms == pytest.approx(float(array.mean()), rel=1e-9, abs=1e-9)
    assert stats.p95_ms == pytest.approx(float(np.percentile(array, 95)), rel=1e-12, abs=1e-9)
    assert stats.max_ms == float(array.max())


@given(latencies)
def test_latency_stats_from_sorted_are_those_of_the_values(values: list[float]) -> None:
    assert LatencyStats.from_sorted(sorted(values)) == LatencyStats.from_values(values)


def test_latency_stats_from_a_sorted_numpy_array_are_plain_floats() -> None:
    array = np.sort(np.array([40.0, 10.0, 30.0, 20.0, 25.0]))
    stats = LatencyStats.from_sorted(array, total_ms=float(array.sum()))
    assert stats == LatencyStats.from_values([40.0, 10.0, 30.0, 20.0, 25.0])
    assert stats is not None
    assert all(type(value) is float for name, value in stats if name != "count")
    assert LatencyStats.from_sorted(np.array([], dtype=np.float64)) is None


def test_latency_stats_from_sorted_take_the_total_they_are_given() -> None:
    assert LatencyStats.from_sorted([1.0, 2.0, 6.0]) == LatencyStats.from_values([6.0, 1.0, 2.0])
    stats = LatencyStats.from_sorted([1.0, 2.0, 6.0], total_ms=7.5)  # the caller's sum
    assert stats is not None
    assert (stats.count, stats.mean_ms, stats.median_ms) == (3, 2.5, 2.0)
    assert LatencyStats.from_sorted([]) is None


def test_latency_stats_refuse_disordered_percentiles() -> None:
    with pytest.raises(ValidationError, match="min <= median <= p90"):
        LatencyStats(
            count=3, mean_ms=5, median_ms=5, p90_ms=9, p95_ms=8, p99_ms=9, min_ms=1, max_ms=9
        )


def test_request_record_derives_ttft_e2e_itl_and_tpot_from_token_times() -> None:
    timing = RequestTiming(
        request_index=7,
        batch_index=2,
        input_tokens=12,
        output_tokens=4,
        start_s=100.0,
        token_times_s=[100.050, 100.070, 100.100, 100.110],
    )
    record = RequestRecord.from_timing(timing)
    assert record.ttft_ms == pytest.approx(50.0)
    assert record.e2e_ms == pytest.approx(110.0)
    assert record.itl_ms == pytest.approx([20.0, 30.0, 10.0])
    assert record.tpot_ms == pytest.approx(20.0)  # (110 - 50) / (4 - 1)
    assert (record.request_index, record.batch_index) == (7, 2)


def test_a_request_with_one_token_has_no_tpot_and_none_has_no_latency() -> None:
    one = RequestRecord.from_timing(
        RequestTiming(
            request_index=0, input_tokens=3, output_tokens=1, start_s=0.0, token_times_s=[0.02]
        ),
    )
    assert one.tpot_ms is None
    assert one.itl_ms == []
    none = RequestRecord.from_timing(
        RequestTiming(
            request_index=1, input_tokens=3, output_tokens=0, start_s=0.0, token_times_s=[]
        ),
    )
    assert (none.ttft_ms, none.e2e_ms, none.tpot_ms) == (None, None, None)


def test_timing_refuses_tokens_before_the_start_or_a_count_mismatch() -> None:
    with pytest.raises(ValidationError, match="must not precede"):
        RequestTiming(
            request_index=0, input_tokens=1, output_tokens=2, start_s=1.0, token_times_s=[0.5, 1.5]
        )
    with pytest.raises(ValidationError, match="token_times_s has 1 entries for 2 output tokens"):
        RequestTiming(
            request_index=0, input_tokens=1, output_tokens=2, start_s=1.0, token_times_s=[1.5]
        )


def _record(index: int, ttft_ms: float, gaps_ms: list[float]) -> RequestRecord:
    return RequestRecord(
        request_index=index,
        batch_index=0,
        input_tokens=5,
        output_tokens=len(gaps_ms) + 1,
        ttft_ms=ttft_ms,
        e2e_ms=ttft_ms + math.fsum(gaps_ms),
        itl_ms=gaps_ms,
    )


def test_latency_metrics_come_from_concatenated_values_not_averages() -> None:
    # Process A: one request with 4 slow gaps; process B: one request with 1 fast gap.
    process_a = [_record(0, 100.0, [40.0, 40.0, 40.0, 40.0])]
    process_b = [_record(1, 20.0, [10.0])]
    metrics = LatencyMetrics.from_requests(process_a + process_b)
    assert metrics.itl is not None
    assert metrics.itl.count == 5
    assert metrics.itl.mean_ms == pytest.approx(34.0)  # (4 x 40 + 10) / 5, not (40 + 10) / 2
    assert metrics.ttft is not None
    assert metrics.ttft.mean_ms == pytest.approx(60.0)
    assert metrics.tpot is not None
    assert metrics.tpot.count == 2
    assert metrics.e2e is not None
    assert metrics.e2e.max_ms == pytest.approx(260.0)


def test_adjusted_energy_subtracts_idle_and_never_goes_negative() -> None:
    assert adjusted_energy_j(500.0, 30.0, 10.0) == 200.0
    assert adjusted_energy_j(100.0, 30.0, 10.0) == 0.0


def test_efficiency_by_hand_and_without_energy() -> None:
    metrics = EfficiencyMetrics.from_energy(1000, 250.0, 125.0)
    assert metrics.output_tokens_per_j == 4.0
    assert metrics.energy_per_output_token_j == 0.25
    assert metrics.output_tokens_per_j_adjusted == 8.0
    assert metrics.energy_per_output_token_adjusted_j == 0.125
    empty = EfficiencyMetrics.from_energy(1000, None, None)
    assert empty.output_tokens_per_j is None
    assert empty.energy_per_output_token_j is None
    no_tokens = EfficiencyMetrics.from_energy(0, 250.0, 0.0)
    assert no_tokens.energy_per_output_token_j is None
    assert no_tokens.output_tokens_per_j_adjusted is None  # zero adjusted energy: undefined
