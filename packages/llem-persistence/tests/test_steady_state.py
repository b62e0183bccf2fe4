"""The steady-state window on constructed in-flight traces, and its figures."""

import math
import random
from collections.abc import Sequence
from itertools import accumulate, pairwise

import numpy as np
import pyarrow as pa
import pytest

from llem_persistence.steady_state import (
    Steps,
    arrivals,
    in_flight,
    steady_state,
    steady_window,
    target_concurrency,
    window_energy_j,
)
from llem_persistence.timeseries import TIMESERIES_SCHEMA
from llem_schema import LoadConfig, RequestRecord
from llem_schema.testing import example_raw_result


def steps_of(pairs: Sequence[tuple[float, int]]) -> Steps:
    times, levels = zip(*pairs, strict=True)
    return Steps(times_s=np.array(times, np.float64), levels=np.array(levels, np.int64))


def pairs_of(steps: Steps) -> list[tuple[float, int]]:
    return list(zip(steps.times_s.tolist(), steps.levels.tolist(), strict=True))


def test_in_flight_steps_up_and_down_with_starts_and_ends() -> None:
    steps = in_flight(np.array([0.0, 1.0, 1.0]), np.array([4.0, 2.0, 5.0]))
    assert pairs_of(steps) == [(0, 1), (1, 3), (2, 2), (4, 1), (5, 0)]
    # a request that starts as another ends overlaps it for that instant: still one level
    assert pairs_of(in_flight(np.array([0.0, 2.0]), np.array([2.0, 3.0]))) == [
        (0, 1),
        (2, 1),
        (3, 0),
    ]


def test_the_window_runs_from_reaching_the_target_to_last_leaving_it() -> None:
    # ramp-up 0-3 s, a full queue of 4 from 3 s (dipping once), drain after 10 s
    steps = steps_of(
        [(0.0, 1), (1.0, 2), (2.0, 3), (3.0, 4), (6.0, 3), (6.5, 4), (10.0, 3), (11.0, 0)]
    )
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
    steps = steps_of([(0.0, 1), (1.0, 2), (9.0, 1), (10.0, 0)])
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


def plain_steady_state(
    requests: Sequence[RequestRecord], load: LoadConfig
) -> tuple[tuple[float, float], int, int] | None:
    """The definition written plainly, request by request: the window, the target and the
    tokens within it (None without a steady state)."""
    spans: list[tuple[float, float, tuple[float, ...]]] = []
    for r in requests:
        if r.start_s is None:
            continue
        if r.ttft_ms is None:
            spans.append((r.start_s, r.start_s, ()))
            continue
        times = tuple(
            accumulate((g / 1000.0 for g in r.itl_ms), initial=r.start_s + r.ttft_ms / 1000.0)
        )
        spans.append((r.start_s, times[-1], times))
    if len(spans) < 2:
        return None
    events = sorted(
        [(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans], key=lambda x: (x[0], -x[1])
    )
    steps: list[tuple[float, int]] = []
    level = 0
    for time_s, change in events:
        level += change
        if steps and steps[-1][0] == time_s:
            steps[-1] = (time_s, level)
        else:
            steps.append((time_s, level))
    if load.rate_per_s is None:
        target = load.max_concurrency
    else:
        arrivals_end = max(s for s, _, _ in spans)
        weights: dict[int, float] = {}
        for (t0, lvl), (t1, _) in pairwise(steps):
            if (overlap := min(t1, arrivals_end) - t0) > 0:
                weights[lvl] = weights.get(lvl, 0.0) + overlap
        total, running, target = math.fsum(weights.values()), 0.0, 1
        for lvl in sorted(weights):
            running += weights[lvl]
            if running >= total / 2:
                target = max(1, min(lvl, load.max_concurrency or lvl))
                break
    assert target is not None
    reached = [i for i, (_, lvl) in enumerate(steps) if lvl >= target]
    if not reached or reached[-1] + 1 >= len(steps):
        return None
    start, end = steps[reached[0]][0], steps[reached[-1] + 1][0]
    if end <= start:
        return None
    return (start, end), target, sum(1 for _, _, ts in spans for t in ts if start <= t <= end)


def random_request(rng: random.Random, index: int) -> RequestRecord:
    gaps = [rng.choice([rng.uniform(1.0, 60.0), 20.0]) for _ in range(rng.choice([0, 1, 5, 40]))]
    produced = rng.random() > 0.05
    ttft = rng.uniform(5.0, 300.0)
    return RequestRecord(
        request_index=index,
        batch_index=0,
        input_tokens=8,
        output_tokens=len(gaps) + 1 if produced else 0,
        ttft_ms=ttft if produced else None,
        e2e_ms=ttft + math.fsum(gaps) if produced else None,
        itl_ms=gaps if produced else [],
        start_s=None if rng.random() < 0.02 else round(index * rng.uniform(0.0, 0.2), 3),
        error="timed out" if rng.random() < 0.05 else None,
    )


@pytest.mark.parametrize("seed", range(30))
def test_the_array_computation_is_the_plain_definition(seed: int) -> None:
    rng = random.Random(seed)
    requests = [random_request(rng, i) for i in range(rng.choice([2, 3, 50, 400]))]
    raw = example_raw_result(n_requests=len(requests)).model_copy(update={"requests": requests})
    bound = rng.randint(1, 12)
    load = rng.choice(
        [
            LoadConfig(max_concurrency=bound),
            LoadConfig(request_rate=8.0),
            LoadConfig(request_rate=8.0, max_concurrency=bound),
        ]
    )
    metrics, _ = steady_state([raw], [0.0], load, None)
    expected = plain_steady_state(requests, load)
    if expected is None:
        assert metrics is None
        return
    assert metrics is not None
    window, target, tokens = expected
    assert (metrics.steady_state_window, metrics.target_concurrency) == (window, target)
    assert metrics.output_tokens == tokens


def test_arrivals_add_each_request_s_gaps_one_after_another_on_one_clock() -> None:
    first = [
        timed(0, start=1.0, tokens_ms=[10.0, 30.0, 60.0]),
        timed(1, start=0.5, tokens_ms=[5.0]),
    ]
    second = [timed(0, start=0.25, tokens_ms=[100.0, 100.5])]
    raws = [
        example_raw_result(n_requests=2).model_copy(update={"requests": first}),
        example_raw_result(n_requests=1).model_copy(update={"requests": second}),
    ]
    found = arrivals(raws, [0.0, 2.0])
    assert found.starts_s.tolist() == [1.0, 0.5, 2.25]
    expected = [1.0 + 0.01, 1.0 + 0.01 + 0.02, 1.0 + 0.01 + 0.02 + 0.03, 0.5 + 0.005]
    expected += [2.25 + 0.1, 2.25 + 0.1 + 0.0005]
    assert sorted(found.token_times_s.tolist()) == sorted(expected)  # in no particular order
    assert found.ends_s.tolist() == [expected[2], expected[3], expected[5]]
