from collections.abc import Callable, Iterator, Sequence

import pytest

from llem_harness.errors import EXIT_FAILURE, HarnessError, exit_code_for
from llem_harness.warmup import batch_latency_ms, latency_cv, run_warmup
from llem_schema import Request, RequestTiming, WarmupConfig


def requests_of(*prompts: str) -> list[Request]:
    return [Request(index=i, prompt=prompt) for i, prompt in enumerate(prompts)]


def timing(request_index: int, latency_ms: float) -> RequestTiming:
    """A request that took ``latency_ms`` from its start to its one token."""
    return RequestTiming(
        request_index=request_index,
        input_tokens=3,
        output_tokens=1,
        start_s=10.0,
        token_times_s=[10.0 + latency_ms / 1000],
    )


def timings_of(latencies_ms: Sequence[float]) -> Iterator[list[RequestTiming]]:
    """Steps that take the given times, one request each."""
    for latency in latencies_ms:
        yield [timing(0, latency)]


Warm = Callable[[Sequence[Request]], list[RequestTiming]]


def warm_with(latencies_ms: Sequence[float]) -> tuple[list[int], Warm]:
    """A step per latency, each running the first request it is given; ``calls`` records how
    many requests each step was offered."""
    steps = iter(timings_of(latencies_ms))
    calls: list[int] = []

    def warm(requests: Sequence[Request]) -> list[RequestTiming]:
        calls.append(len(requests))
        return next(steps)

    return calls, warm


def test_fixed_count_runs_exactly_that_many_steps() -> None:
    calls, warm = warm_with([100.0, 50.0, 40.0, 99.0])
    result = run_warmup(WarmupConfig(count=3), requests_of("a", "b"), warm)
    assert result.batches == 3
    assert calls == [2, 1, 2]  # each step one request on, back to the start at the end
    assert result.latencies_ms == pytest.approx([100.0, 50.0, 40.0])
    assert result.converged is None
    assert result.cv_target is None


def test_steps_walk_the_requests_and_wrap_around() -> None:
    requests = requests_of("a", "b", "c", "d", "e")
    offered: list[list[int]] = []

    def warm(given: Sequence[Request]) -> list[RequestTiming]:
        """A backend running two requests at once (or the one left at the end)."""
        offered.append([request.index for request in given])
        return [timing(request.index, 20.0) for request in given[:2]]

    advanced: list[int] = []
    result = run_warmup(WarmupConfig(count=5), requests, warm, advanced.append)
    assert offered == [
        [0, 1, 2, 3, 4],
        [2, 3, 4],
        [4],  # only one left: the step runs it alone
        [0, 1, 2, 3, 4],  # and the next starts over
        [2, 3, 4],
    ]
    assert advanced == [1] * 5
    assert result.batches == 5
    assert result.latencies_ms == pytest.approx([20.0] * 5)


def test_a_step_that_runs_no_request_is_an_error() -> None:
    advanced: list[int] = []
    with pytest.raises(HarnessError) as caught:
        run_warmup(WarmupConfig(count=2), requests_of("a"), lambda given: [], advanced.append)
    assert str(caught.value) == (
        "the backend's warmup step ran no request (it must run at least one)"
    )
    assert exit_code_for(caught.value) == EXIT_FAILURE
    assert advanced == []


def test_convergence_stops_once_the_recent_cv_is_below_target() -> None:
    noisy_then_steady = [300.0, 120.0, 80.0, 100.0, 100.0, 101.0, 100.0, 99.0, 500.0]
    _, warm = warm_with(noisy_then_steady)
    config = WarmupConfig(count=2, until_converged=True, cv_window=4, cv_target=0.05, max_count=9)
    result = run_warmup(config, requests_of("p"), warm)
    assert result.batches == 7  # the last four (100, 101, 100, 99) vary by under 5 %
    assert result.converged is True
    assert result.final_cv is not None
    assert result.final_cv < 0.05
    assert result.cv_target == 0.05


def test_convergence_gives_up_at_max_count_and_says_so() -> None:
    _, warm = warm_with([100.0, 200.0] * 5)
    config = WarmupConfig(count=1, until_converged=True, cv_window=3, max_count=6)
    result = run_warmup(config, requests_of("p"), warm)
    assert result.batches == 6
    assert result.converged is False
    assert result.final_cv is not None
    assert result.final_cv > 0.3


def test_no_warmup() -> None:
    calls, warm = warm_with([])
    result = run_warmup(WarmupConfig(count=0), requests_of("p"), warm)
    assert (result.batches, calls) == (0, [])


def test_batch_latency_and_cv_by_hand() -> None:
    (step,) = list(timings_of([250.0]))
    assert batch_latency_ms(step) == 250.0
    assert batch_latency_ms([]) == 0.0
    assert latency_cv([1.0]) is None
    assert latency_cv([90.0, 110.0]) == (200.0**0.5) / 100.0
