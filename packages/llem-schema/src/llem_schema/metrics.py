"""llem's metric definitions, written once and used by every package.

- TTFT: request start to its first output token.
- ITL: the gaps between successive output tokens of one request (TTFT excluded).
- TPOT: (E2E - TTFT) / (output tokens - 1), for requests with at least two output tokens.
- E2E: request start to its last output token.
- Throughput: output tokens / measurement-window wall time; the input-inclusive figure is
  labelled separately.
- Efficiency: output tokens per joule and joules per output token, from raw and from
  baseline-adjusted energy. Adjusted energy = max(0, raw - baseline power x duration).
- Requests: request throughput = completed requests / window wall time; the achieved arrival
  rate = (requests - 1) / (last start - first start); energy per request = energy /
  completed requests; goodput = completed requests meeting every SLO / window wall time.
  Failed requests count in none of the latency statistics.
- Steady state (under a load with a rate or a concurrency bound): the window in which the
  requests in flight stay at or above the target concurrency (``load.max_concurrency``, else
  the median level while requests arrive), from the first time they reach it to the last time
  they leave it: ramp-up and drain left out. Throughput and energy per token over that window
  are reported beside the whole-run figures, labelled ``steady_state`` against ``total``.

Statistics over many requests are computed once from all the raw values (across processes
too): percentiles are never averaged.
"""

import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Literal, Protocol, Self

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from llem_schema._base import FrozenModel
from llem_schema.config import SloConfig
from llem_schema.records import RequestRecord

__all__ = [
    "EfficiencyMetrics",
    "LatencyMetrics",
    "LatencyStats",
    "RequestMetrics",
    "SortedValues",
    "SteadyStateMetrics",
    "adjusted_energy_j",
    "energy_per_token_j",
    "percentile",
    "tokens_per_j",
]

_REL_TOL = 1e-9


class SortedValues(Protocol):
    """Ascending numbers that can be counted and indexed: a sorted list, or a sorted float
    array (numpy's, whose items are float subclasses)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> float: ...

    def __iter__(self) -> Iterator[float]: ...


def percentile(sorted_values: SortedValues, q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending ``sorted_values``, linearly interpolated.

    The same definition as numpy's default (``method="linear"``, Hyndman & Fan type 7).
    """
    if len(sorted_values) == 0:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within [0, 100], got {q}")
    position = (len(sorted_values) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    low, high = float(sorted_values[lower]), float(sorted_values[upper])
    return low + (high - low) * (position - lower)


class LatencyStats(FrozenModel):
    """Summary of one latency metric over every value measured, in milliseconds."""

    count: int = Field(gt=0, description="Number of values summarised.")
    mean_ms: NonNegativeFloat = Field(description="Arithmetic mean, ms.")
    median_ms: NonNegativeFloat = Field(description="50th percentile, ms.")
    p90_ms: NonNegativeFloat = Field(description="90th percentile (linear interpolation), ms.")
    p95_ms: NonNegativeFloat = Field(description="95th percentile (linear interpolation), ms.")
    p99_ms: NonNegativeFloat = Field(description="99th percentile (linear interpolation), ms.")
    min_ms: NonNegativeFloat = Field(description="Smallest value, ms.")
    max_ms: NonNegativeFloat = Field(description="Largest value, ms.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        chain = [self.min_ms, self.median_ms, self.p90_ms, self.p95_ms, self.p99_ms, self.max_ms]
        slack = _REL_TOL * max(1.0, self.max_ms)
        if any(b < a - slack for a, b in pairwise(chain)):
            raise ValueError(
                "latency statistics must satisfy min <= median <= p90 <= p95 <= p99 <= max"
            )
        if not self.min_ms - slack <= self.mean_ms <= self.max_ms + slack:
            raise ValueError("latency mean must lie between min and max")
        return self

    @classmethod
    def from_values(cls, values_ms: Iterable[float]) -> Self | None:
        """Statistics of ``values_ms``, or ``None`` when there are none."""
        return cls.from_sorted(sorted(values_ms))

    @classmethod
    def from_sorted(cls, sorted_ms: SortedValues, *, total_ms: float | None = None) -> Self | None:
        """Statistics of ascending ``sorted_ms``, or ``None`` when there are none.

        ``total_ms`` is their sum where the caller has it (a vectorised sum of a large
        array); by default ``math.fsum`` of the values.
        """
        count = len(sorted_ms)
        if count == 0:
            return None
        if total_ms is None:
            total_ms = math.fsum(sorted_ms)
        return cls(
            count=count,
            mean_ms=float(total_ms) / count,
            median_ms=percentile(sorted_ms, 50),
            p90_ms=percentile(sorted_ms, 90),
            p95_ms=percentile(sorted_ms, 95),
            p99_ms=percentile(sorted_ms, 99),
            min_ms=float(sorted_ms[0]),
            max_ms=float(sorted_ms[count - 1]),
        )


class LatencyMetrics(FrozenModel):
    """TTFT, ITL, TPOT and E2E statistics; ``None`` where no request had a value."""

    ttft: LatencyStats | None = Field(description="Time to first token, one value per request.")
    itl: LatencyStats | None = Field(
        description="Inter-token latency, every gap between successive tokens of each request."
    )
    tpot: LatencyStats | None = Field(
        description="Time per output token after the first, one value per request with >= 2 tokens."
    )
    e2e: LatencyStats | None = Field(description="End-to-end latency, one value per request.")

    @classmethod
    def from_requests(cls, requests: Iterable[RequestRecord]) -> Self:
        """Statistics over all completed ``requests`` at once (concatenate across processes
        first); a failed request's partial latencies are left out."""
        ttft: list[float] = []
        itl: list[float] = []
        tpot: list[float] = []
        e2e: list[float] = []
        for request in requests:
            if request.error is not None:
                continue
            if request.ttft_ms is not None:
                ttft.append(request.ttft_ms)
            if request.e2e_ms is not None:
                e2e.append(request.e2e_ms)
            if request.tpot_ms is not None:
                tpot.append(request.tpot_ms)
            itl.extend(request.itl_ms)
        return cls(
            ttft=LatencyStats.from_values(ttft),
            itl=LatencyStats.from_values(itl),
            tpot=LatencyStats.from_values(tpot),
            e2e=LatencyStats.from_values(e2e),
        )


def adjusted_energy_j(raw_j: float, baseline_power_w: float, duration_s: float) -> float:
    """Energy above idle: ``max(0, raw - baseline power x duration)``."""
    return max(0.0, raw_j - baseline_power_w * duration_s)


def tokens_per_j(tokens: int, energy_j: float | None) -> float | None:
    """Tokens per joule; ``None`` without a positive energy figure."""
    if energy_j is None or energy_j <= 0.0:
        return None
    return tokens / energy_j


def energy_per_token_j(energy_j: float | None, tokens: int) -> float | None:
    """Joules per token; ``None`` without energy or without tokens."""
    if energy_j is None or tokens <= 0:
        return None
    return energy_j / tokens


class EfficiencyMetrics(FrozenModel):
    """Energy efficiency per output token, from raw and from baseline-adjusted energy.

    A figure is None without energy, and also when it is withheld because the energy does not
    cover the work of every process (a result says why in its warnings).
    """

    output_tokens_per_j: NonNegativeFloat | None = Field(
        description="Output tokens per joule of raw energy."
    )
    energy_per_output_token_j: NonNegativeFloat | None = Field(
        description="Raw joules per output token."
    )
    output_tokens_per_j_adjusted: NonNegativeFloat | None = Field(
        description="Output tokens per joule of baseline-adjusted energy."
    )
    energy_per_output_token_adjusted_j: NonNegativeFloat | None = Field(
        description="Baseline-adjusted joules per output token."
    )

    @classmethod
    def from_energy(
        cls, output_tokens: int, energy_j: float | None, adjusted_j: float | None
    ) -> Self:
        """The four figures for ``output_tokens`` produced with ``energy_j`` (raw) joules."""
        return cls(
            output_tokens_per_j=tokens_per_j(output_tokens, energy_j),
            energy_per_output_token_j=energy_per_token_j(energy_j, output_tokens),
            output_tokens_per_j_adjusted=tokens_per_j(output_tokens, adjusted_j),
            energy_per_output_token_adjusted_j=energy_per_token_j(adjusted_j, output_tokens),
        )


class RequestMetrics(FrozenModel):
    """The experiment's requests as a server's load: how many, how fast, how many failed."""

    requests: int = Field(ge=0, description="Requests sent, all processes.")
    failed_requests: int = Field(ge=0, description="Requests that ended in an error.")
    request_throughput_per_s: NonNegativeFloat = Field(
        description="Completed requests / measurement-window wall time, requests/s."
    )
    requested_rate_per_s: NonNegativeFloat | None = Field(
        description="The load's request_rate, requests/s; None for 'inf' (all at once)."
    )
    achieved_rate_per_s: NonNegativeFloat | None = Field(
        description=(
            "(requests - 1) / (last start - first start), requests/s; None below two "
            "requests, when they all started at once, or without start times (before 1.2)."
        )
    )
    energy_per_request_j: NonNegativeFloat | None = Field(
        default=None, description="Energy / completed requests, J; None without either."
    )
    slo: SloConfig | None = Field(default=None, description="The objectives goodput counts.")
    goodput_per_s: NonNegativeFloat | None = Field(
        default=None,
        description="Completed requests meeting every SLO / window wall time, requests/s.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.failed_requests > self.requests:
            raise ValueError("failed_requests cannot exceed requests")
        if (self.slo is None) != (self.goodput_per_s is None):
            raise ValueError("goodput_per_s is given exactly when an SLO is")
        return self

    @classmethod
    def from_requests(
        cls,
        requests: Sequence[RequestRecord],
        *,
        duration_s: float,
        starts_s: Sequence[float] | None = None,
        energy_j: float | None = None,
        requested_rate_per_s: float | None = None,
        slo: SloConfig | None = None,
    ) -> Self:
        """The figures of ``requests`` (all processes) over a window of ``duration_s``.

        ``starts_s`` are the requests' start times on one clock (processes' windows start
        apart); by default each request's own ``start_s``.
        """
        completed = [r for r in requests if r.error is None]
        if starts_s is None:
            starts_s = [r.start_s for r in requests if r.start_s is not None]
        starts = sorted(starts_s)
        span = starts[-1] - starts[0] if len(starts) == len(requests) >= 2 else 0.0
        goodput = None
        if slo is not None:
            meeting = sum(1 for r in completed if _meets(r, slo))
            goodput = meeting / duration_s
        return cls(
            requests=len(requests),
            failed_requests=len(requests) - len(completed),
            request_throughput_per_s=len(completed) / duration_s,
            requested_rate_per_s=requested_rate_per_s,
            achieved_rate_per_s=(len(starts) - 1) / span if span > 0 else None,
            energy_per_request_j=(
                energy_j / len(completed) if energy_j is not None and completed else None
            ),
            slo=slo,
            goodput_per_s=goodput,
        )


def _meets(request: RequestRecord, slo: SloConfig) -> bool:
    """Whether a completed request meets every objective of ``slo`` (a request with one
    output token has no TPOT, and so breaks no TPOT objective)."""
    if slo.ttft_ms is not None and (request.ttft_ms is None or request.ttft_ms > slo.ttft_ms):
        return False
    tpot = request.tpot_ms
    return slo.tpot_ms is None or tpot is None or tpot <= slo.tpot_ms


class SteadyStateMetrics(FrozenModel):
    """The run's figures over its steady-state window (see the module docstring)."""

    measurement_methodology: Literal["steady_state"] = Field(
        default="steady_state", description="These figures cover the steady-state window."
    )
    steady_state_window: tuple[NonNegativeFloat, NonNegativeFloat] = Field(
        description="[start_s, end_s] of the window, s from the experiment's start."
    )
    target_concurrency: PositiveInt = Field(
        description="Requests in flight at or above which the run is in steady state."
    )
    duration_s: PositiveFloat = Field(description="Length of the window, s.")
    output_tokens: NonNegativeInt = Field(description="Output tokens that arrived within it.")
    output_tokens_per_s: NonNegativeFloat = Field(
        description="output_tokens / duration_s, tokens/s."
    )
    gpu_energy_j: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "GPU energy within the window, integrated from the sampled power of every metered "
            "GPU, J; None without power samples."
        ),
    )
    energy_per_output_token_j: NonNegativeFloat | None = Field(
        default=None, description="gpu_energy_j / output_tokens, J; None without either."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        start, end = self.steady_state_window
        if end <= start or not math.isclose(end - start, self.duration_s, rel_tol=1e-6):
            raise ValueError("steady_state_window must span duration_s")
        return self
