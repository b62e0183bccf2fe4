"""The steady-state window on constructed in-flight traces, and its figures."""

from itertools import pairwise

import pyarrow as pa
import pytest

from llem_persistence.steady_state import (
    Interval,
    in_flight,
    steady_state,
    steady_window,
    target_concurrency,
    window_energy_j,
)
from llem_persistence.timeseries import TIMESERIES_SCHEMA
from llem_schema import LoadConfig, RequestRecord
from llem_schema.testing import example_raw_result


def request(start: float, end: float) -> Interval:
    return Interval(start, end, (end,))


def test_in_flight_steps_up_and_down_with_starts_and_ends() -> None:
    steps = in_flight([request(0, 4), request(1, 2), request(1, 5)])
    assert steps == [(0, 1), (1, 3), (2, 2), (4, 1), (5, 0)]


def test_the_window_runs_from_reaching_the_target_to_last_leaving_it() -> None:
    # ramp-up 0-3 s, a full queue of 4 from 3 s (dipping once), drain after 10 s
    steps = [(0.0, 1), (1.0, 2), (2.0, 3), (3.0, 4), (6.0, 3), (6.5, 4), (10.0, 3), (11.0, 0)]
    assert steady_window(steps, 4) == (3.0, 10.0)
    assert steady_window(steps, 5) is None  # never reached


def test_a_run_that_never_reaches_its_bound_has_no_steady_state_and_a_warning() -> None:
    load = LoadConfig(max_concurrency=8)  # every request at once, at most 8 in flight
    raw = example_raw_result(n_requests=4).model_copy(
        update={"requests": [timed(i, start=0.5 * i, tokens_ms=[100, 110]) for i in range(4)]}
    )
    metrics, warning = steady_state([raw], [0.0], load, None)
    assert metrics is None
    assert warning == (
        "the run never reached a steady state: requests in flight peaked at 1, below the "
        "target of 8; send more requests, or faster, to measure one"
    )


def test_everything_sent_at_once_without_a_bound_has_no_steady_state() -> None:
    raw = example_raw_result(n_requests=6).model_copy(
        update={"requests": [timed(i, start=0.0, tokens_ms=[100, 200]) for i in range(6)]}
    )
    assert steady_state([raw], [0.0], LoadConfig(), None) == (None, None)


def test_under_a_rate_the_target_is_the_median_level_while_requests_arrive() -> None:
    steps = [(0.0, 1), (1.0, 2), (9.0, 1), (10.0, 0)]
    assert target_concurrency(LoadConfig(request_rate=1), steps, arrivals_end_s=9.0) == 2
    # a bound the rate never reaches is no target; one below the median caps it
    assert target_concurrency(LoadConfig(request_rate=1, max_concurrency=64), steps, 9.0) == 2
    assert target_concurrency(LoadConfig(request_rate=1, max_concurrency=1), steps, 9.0) == 1
    # every request at once: the bound, or no steady state at all
    assert target_concurrency(LoadConfig(max_concurrency=3), steps, 9.0) == 3
    assert target_concurrency(LoadConfig(), steps, 9.0) is None


def test_a_rate_below_the_bound_has_its_steady_state_at_the_level_the_rate_keeps() -> None:
    # 8 requests/s for 60 s, each 1.5 s long: 12 in flight once the first has ended, far
    # below the bound of 64 the config also sets
    records = [
        timed(i, start=i / 8, tokens_ms=[100.0 * k for k in range(1, 16)]) for i in range(480)
    ]
    raw = example_raw_result(n_requests=480).model_copy(update={"requests": records})
    metrics, warning = steady_state(
        [raw], [0.0], LoadConfig(request_rate=8, max_concurrency=64), None
    )
    assert metrics is not None
    assert metrics.target_concurrency == 12
    start, end = metrics.steady_state_window
    assert start == pytest.approx(1.375)  # the twelfth start, before the first end
    assert end == pytest.approx(59.875 + 1.5 - 11 / 8)  # the last time 12 were in flight
    assert warning is None


def timed(index: int, *, start: float, tokens_ms: list[float]) -> RequestRecord:
    gaps = [b - a for a, b in pairwise(tokens_ms)]
    return RequestRecord(
        request_index=index,
        batch_index=0,
        input_tokens=4,
        output_tokens=len(tokens_ms),
        ttft_ms=tokens_ms[0],
        e2e_ms=tokens_ms[-1],
        itl_ms=gaps,
        start_s=start,
        scheduled_s=start,
    )


def samples(points: list[tuple[float, int, float]]) -> pa.Table:
    columns: dict[str, list[object]] = {name: [] for name in TIMESERIES_SCHEMA.names}
    for time_s, gpu, power in points:
        columns["timestamp_s"].append(time_s)
        columns["gpu_index"].append(gpu)
        columns["gpu_power_w"].append(power)
        for name in TIMESERIES_SCHEMA.names[3:]:
            columns[name].append(None)
    return pa.Table.from_pydict(columns, schema=TIMESERIES_SCHEMA)


def test_window_energy_integrates_every_gpu_interpolating_at_the_edges() -> None:
    table = samples([(0.0, 0, 100.0), (10.0, 0, 200.0), (0.0, 1, 50.0), (10.0, 1, 50.0)])
    # GPU 0 over [2, 4]: power 120 -> 140, 260 J; GPU 1: 50 W x 2 s
    assert window_energy_j(table, 2.0, 4.0) == pytest.approx(260.0 + 100.0)
    assert window_energy_j(samples([(0.0, 0, 100.0)]), 0.0, 1.0) is None


def test_a_steady_run_reports_tokens_throughput_and_energy_over_its_window() -> None:
    # four requests 230 ms apart (all due at once, at most 4 in flight: the bound is the
    # target), each a token every 100 ms from 37 ms: all four in flight from the last start
    # (0.69 s) to the first end (2.937 s)
    records = [
        timed(i, start=0.23 * i, tokens_ms=[37.0 + 100.0 * k for k in range(30)]) for i in range(4)
    ]
    raw = example_raw_result(n_requests=4).model_copy(update={"requests": records})
    load = LoadConfig(max_concurrency=4)
    table = samples([(0.0, 0, 100.0), (5.0, 0, 100.0)])
    metrics, warning = steady_state([raw], [0.0], load, table)
    assert metrics is not None
    assert metrics.steady_state_window == pytest.approx((0.69, 2.937))
    assert metrics.target_concurrency == 4
    in_window = sum(  # in whole milliseconds, no rounding at the edges
        1 for i in range(4) for k in range(30) if 690 <= 230 * i + 37 + 100 * k <= 2937
    )
    assert metrics.output_tokens == in_window
    assert metrics.output_tokens_per_s == pytest.approx(in_window / 2.247)
    assert metrics.gpu_energy_j == pytest.approx(100.0 * 2.247)
    assert metrics.energy_per_output_token_j == pytest.approx(224.7 / in_window)
    assert warning is not None
    assert warning.startswith("the steady state lasted 2.2 s, under 30 s")
