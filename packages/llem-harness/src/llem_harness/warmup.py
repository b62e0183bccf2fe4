"""Warmup before the energy window opens: a fixed count of steps, optionally continued until
the latency of recent steps stops varying (coefficient of variation below a target).

A step is whatever the backend runs at once (a batch of a batch loop): it takes the first of
the requests it is given and returns their timings; the next step starts after them, and at
the end the requests start over.
"""

import math
import statistics
import time
from collections.abc import Callable, Sequence

from llem_harness.errors import HarnessError
from llem_schema import Request, RequestTiming, WarmupConfig, WarmupResult

__all__ = ["batch_latency_ms", "latency_cv", "run_warmup"]


def batch_latency_ms(timings: Sequence[RequestTiming]) -> float:
    """Wall time of one step: first request start to last token, ms."""
    starts = [t.start_s for t in timings]
    ends = [t.token_times_s[-1] if t.token_times_s else t.start_s for t in timings]
    return (max(ends) - min(starts)) * 1000.0 if timings else 0.0


def latency_cv(latencies_ms: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; None for fewer than two values or a zero mean."""
    if len(latencies_ms) < 2:
        return None
    mean = statistics.fmean(latencies_ms)
    return statistics.stdev(latencies_ms) / mean if mean > 0 else None


def run_warmup(
    config: WarmupConfig,
    requests: Sequence[Request],
    warm: Callable[[Sequence[Request]], Sequence[RequestTiming]],
    advance: Callable[[int], None] = lambda n: None,
) -> WarmupResult:
    """Run warmup steps over ``requests`` (see the module docstring) as ``config`` asks."""
    started = time.perf_counter()
    latencies: list[float] = []
    limit = config.max_count if config.until_converged else config.count
    final_cv: float | None = None
    converged: bool | None = None
    offset = 0
    for i in range(limit):
        if i >= config.count:
            final_cv = latency_cv(latencies[-config.cv_window :])
            if (
                len(latencies) >= config.cv_window
                and final_cv is not None
                and final_cv <= config.cv_target
            ):
                break
        timings = warm(requests[offset:])
        if not timings:
            raise HarnessError(
                "the backend's warmup step ran no request (it must run at least one)"
            )
        latencies.append(batch_latency_ms(timings))
        offset = (offset + len(timings)) % len(requests)
        advance(1)
    if config.until_converged:
        final_cv = latency_cv(latencies[-config.cv_window :])
        converged = (
            len(latencies) >= config.cv_window
            and final_cv is not None
            and final_cv <= config.cv_target
        )
    return WarmupResult(
        batches=len(latencies),
        duration_s=time.perf_counter() - started,
        latencies_ms=latencies,
        converged=converged,
        final_cv=final_cv if final_cv is None or math.isfinite(final_cv) else None,
        cv_target=config.cv_target if config.until_converged else None,
    )
