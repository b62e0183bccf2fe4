"""The arrival schedule against its distribution, and how requests are shared out."""

import statistics
from itertools import pairwise

import pytest

from llem_harness.arrivals import arrival_times, request_count, shard_indices
from llem_harness.worker import requests_of
from llem_schema import LoadConfig, WorkerContext, parse_config


def gaps(load: LoadConfig, count: int = 20_000, seed: int = 7) -> list[float]:
    times = arrival_times(load, count=count, seed=seed)
    return [b - a for a, b in pairwise(times)]


@pytest.mark.parametrize(("burstiness", "cv"), [(1.0, 1.0), (0.25, 2.0), (4.0, 0.5)])
def test_gaps_have_the_rate_s_mean_and_the_burstiness_s_spread(
    burstiness: float, cv: float
) -> None:
    observed = gaps(LoadConfig(request_rate=50, burstiness=burstiness))
    mean = statistics.fmean(observed)
    assert mean == pytest.approx(1 / 50, rel=0.05)
    assert statistics.stdev(observed) / mean == pytest.approx(cv, rel=0.08)


def test_the_same_seed_sends_the_same_schedule_and_another_does_not() -> None:
    load = LoadConfig(request_rate=10)
    first = arrival_times(load, count=100, seed=1)
    assert first == arrival_times(load, count=100, seed=1)
    assert first != arrival_times(load, count=100, seed=2)
    assert first[0] == 0.0  # the first request is due at once
    assert first == sorted(first)
    pinned = LoadConfig(request_rate=10, seed=9)  # load.seed wins over the experiment's
    assert arrival_times(pinned, count=5, seed=1) == arrival_times(pinned, count=5, seed=2)


def test_an_infinite_rate_sends_everything_at_once_and_a_duration_bounds_the_schedule() -> None:
    assert arrival_times(LoadConfig(), count=3, seed=0) == [0.0, 0.0, 0.0]
    times = arrival_times(LoadConfig(request_rate=20), duration_s=10.0, seed=3)
    assert times[-1] < 10.0
    assert len(times) == pytest.approx(200, rel=0.15)
    config = parse_config({"n": 5, "load": {"request_rate": 20, "duration_s": 10}})
    within = arrival_times(config.load, duration_s=10.0, seed=config.seed)
    assert request_count(config) == len(within) > config.n  # the prompts repeat


def test_a_schedule_is_shared_across_its_whole_time_and_an_instant_load_in_blocks() -> None:
    assert list(shard_indices(7, 2, 0, spread=True)) == [0, 2, 4, 6]
    assert list(shard_indices(7, 2, 1, spread=True)) == [1, 3, 5]
    assert list(shard_indices(7, 2, 0, spread=False)) == [0, 1, 2]
    assert list(shard_indices(7, 2, 1, spread=False)) == [3, 4, 5, 6]


def test_requests_carry_their_prompt_and_their_time_in_the_schedule() -> None:
    config = parse_config({"n": 4, "load": {"request_rate": 10, "duration_s": 2}})
    prompts = ["a", "b", "c", "d"]
    mine = requests_of(config, prompts, WorkerContext(process_index=1, num_processes=2))
    everything = arrival_times(config.load, duration_s=2, seed=config.seed)
    assert [r.index for r in mine] == list(range(1, len(everything), 2))
    assert [r.prompt for r in mine] == [prompts[i % 4] for i in range(1, len(everything), 2)]
    assert [r.scheduled_s for r in mine] == everything[1::2]
    instant = requests_of(
        parse_config({"n": 3}), ["x", "y", "z"], WorkerContext(process_index=0, num_processes=1)
    )
    assert [(r.index, r.prompt, r.scheduled_s) for r in instant] == [
        (0, "x", None), (1, "y", None), (2, "z", None)
    ]  # fmt: skip
