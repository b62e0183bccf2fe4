from collections.abc import Callable, Iterator, Sequence

import pytest

from llem.harness.warmup import batch_latency_ms, latency_cv, run_warmup
from llem_schema import RequestTiming, WarmupConfig


def timings_of(latencies_ms: Sequence[float]) -> Iterator[list[RequestTiming]]:
    """Batches that take the given times, one request each."""
    for latency in latencies_ms:
        yield [
            RequestTiming(
                request_index=0,
                input_tokens=3,
                output_tokens=1,
                start_s=10.0,
                token_times_s=[10.0 + latency / 1000],
            )
        ]


Warm = Callable[[Sequence[str]], list[RequestTiming]]


def warm_with(latencies_ms: Sequence[float]) -> tuple[list[int], Warm]:
    batches = iter(timings_of(latencies_ms))
    calls: list[int] = []

    def warm(prompts: Sequence[str]) -> list[RequestTiming]:
        calls.append(len(prompts))
        return next(batches)

    return calls, warm


def test_fixed_count_runs_exactly_that_many_batches() -> None:
    calls, warm = warm_with([100.0, 50.0, 40.0, 99.0])
    result = run_warmup(WarmupConfig(count=3), [["a", "b"], ["c"]], warm)
    assert result.batches == 3
    assert calls == [2, 1, 2]  # cycles through the batches
    assert result.latencies_ms == pytest.approx([100.0, 50.0, 40.0])
    assert result.converged is None
    assert result.cv_target is None


def test_convergence_stops_once_the_recent_cv_is_below_target() -> None:
    noisy_then_steady = [300.0, 120.0, 80.0, 100.0, 100.0, 101.0, 100.0, 99.0, 500.0]
    _, warm = warm_with(noisy_then_steady)
    config = WarmupConfig(count=2, until_converged=True, cv_window=4, cv_target=0.05, max_count=9)
    result = run_warmup(config, [["p"]], warm)
    assert result.batches == 7  # the last four (100, 101, 100, 99) vary by under 5 %
    assert result.converged is True
    assert result.final_cv is not None
    assert result.final_cv < 0.05


def test_convergence_gives_up_at_max_count_and_says_so() -> None:
    _, warm = warm_with([100.0, 200.0] * 5)
    config = WarmupConfig(count=1, until_converged=True, cv_window=3, max_count=6)
    result = run_warmup(config, [["p"]], warm)
    assert result.batches == 6
    assert result.converged is False
    assert result.final_cv is not None
    assert result.final_cv > 0.3


def test_no_warmup() -> None:
    calls, warm = warm_with([])
    result = run_warmup(WarmupConfig(count=0), [["p"]], warm)
    assert (result.batches, calls) == (0, [])


def test_batch_latency_and_cv_by_hand() -> None:
    (batch,) = list(timings_of([250.0]))
    assert batch_latency_ms(batch) == 250.0
    assert latency_cv([1.0]) is None
    assert latency_cv([90.0, 110.0]) == (200.0**0.5) / 100.0
