"""Warmup before the energy window opens: a fixed count of batches, optionally continued
until the latency of recent batches stops varying (coefficient of variation below a target)."""

import math
import statistics
import time
from collections.abc import Callable, Sequence

from llem_schema import RequestTiming, WarmupConfig, WarmupResult

__all__ = ["batch_latency_ms", "latency_cv", "run_warmup"]


def batch_latency_ms(timings: Sequence[RequestTiming]) -> float:
    """Wall time of one batch: first request start to last token, ms."""
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
    batches: Sequence[Sequence[str]],
    warm: Callable[[Sequence[str]], Sequence[RequestTiming]],
    advance: Callable[[int], None] = lambda n: None,
) -> WarmupResult:
    """Run warmup batches (cycling through ``batches``) as ``config`` asks."""
    started = time.perf_counter()
    latencies: list[float] = []
    limit = config.max_count if config.until_converged else config.count
    final_cv: float | None = None
    converged: bool | None = None
    for i in range(limit):
        if i >= config.count:
            final_cv = latency_cv(latencies[-config.cv_window :])
            if (
                len(latencies) >= config.cv_window
                and final_cv is not None
                and final_cv <= config.cv_target
            ):
                break
        latencies.append(batch_latency_ms(warm(batches[i % len(batches)])))
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
