"""When each request is sent: the arrival schedule of a config's ``load:`` section.

The schedule is drawn up front from the seed, so two runs of one config send the same
requests at the same times. The gaps between arrivals follow a gamma distribution of shape
``burstiness`` and scale ``1 / (request_rate * burstiness)``: their mean is ``1 /
request_rate`` whatever the shape, and their coefficient of variation ``1 / sqrt(burstiness)``
(1 for a Poisson process, 2 for burstiness 0.25), as vLLM's serving benchmark defines it. The
first request is due at once.
"""

import random

from llem_schema import ExperimentConfig, LoadConfig

__all__ = ["arrival_times", "request_count", "shard_indices"]


def request_count(config: ExperimentConfig) -> int:
    """How many requests the experiment sends: ``n``, or every arrival of the schedule
    within ``load.duration_s``."""
    if config.load.duration_s is None:
        return config.n
    return len(arrival_times(config.load, duration_s=config.load.duration_s, seed=config.seed))


def arrival_times(
    load: LoadConfig, *, count: int | None = None, duration_s: float | None = None, seed: int
) -> list[float]:
    """The send times, s from the start: ``count`` of them, or all before ``duration_s``.

    ``load.seed`` (when set) takes precedence over ``seed``. With an infinite rate every
    request is due at once (all zeros).
    """
    if (count is None) == (duration_s is None):
        raise ValueError("give count or duration_s")
    rate = load.rate_per_s
    if rate is None:
        if count is None:
            raise ValueError("an infinite rate has no duration: give count")
        return [0.0] * count
    rng = random.Random(load.seed if load.seed is not None else seed)
    scale = 1.0 / (rate * load.burstiness)
    times: list[float] = []
    now = 0.0
    while (count is not None and len(times) < count) or (
        duration_s is not None and now < duration_s
    ):
        times.append(now)
        now += rng.gammavariate(load.burstiness, scale)
    return times


def shard_indices(count: int, num_processes: int, process_index: int, *, spread: bool) -> range:
    """The request indices process ``process_index`` sends.

    ``spread``: every ``num_processes``-th request (a schedule over time, each process
    sending its share across the whole of it); else a contiguous block (requests taken as
    fast as possible).
    """
    if spread:
        return range(process_index, count, num_processes)
    return range(
        process_index * count // num_processes, (process_index + 1) * count // num_processes
    )
