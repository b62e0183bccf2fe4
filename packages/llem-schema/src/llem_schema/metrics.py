"""llem's metric definitions, written once and used by every package.

- TTFT: request start to its first output token.
- ITL: the gaps between successive output tokens of one request (TTFT excluded).
- TPOT: (E2E - TTFT) / (output tokens - 1), for requests with at least two output tokens.
- E2E: request start to its last output token.
- Throughput: output tokens / measurement-window wall time; the input-inclusive figure is
  labelled separately.
- Efficiency: output tokens per joule and joules per output token, from raw and from
  baseline-adjusted energy. Adjusted energy = max(0, raw - baseline power x duration).

Statistics over many requests are computed once from all the raw values (across processes
too): percentiles are never averaged.
"""

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Self

from pydantic import Field, NonNegativeFloat, model_validator

from llem_schema._base import FrozenModel
from llem_schema.records import RequestRecord

__all__ = [
    "EfficiencyMetrics",
    "LatencyMetrics",
    "LatencyStats",
    "adjusted_energy_j",
    "energy_per_token_j",
    "percentile",
    "tokens_per_j",
]

_REL_TOL = 1e-9


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending ``sorted_values``, linearly interpolated.

    The same definition as numpy's default (``method="linear"``, Hyndman & Fan type 7).
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within [0, 100], got {q}")
    position = (len(sorted_values) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    low, high = sorted_values[lower], sorted_values[upper]
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
        ordered = sorted(values_ms)
        if not ordered:
            return None
        return cls(
            count=len(ordered),
            mean_ms=math.fsum(ordered) / len(ordered),
            median_ms=percentile(ordered, 50),
            p90_ms=percentile(ordered, 90),
            p95_ms=percentile(ordered, 95),
            p99_ms=percentile(ordered, 99),
            min_ms=ordered[0],
            max_ms=ordered[-1],
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
        """Statistics over all ``requests`` at once (concatenate across processes first)."""
        ttft: list[float] = []
        itl: list[float] = []
        tpot: list[float] = []
        e2e: list[float] = []
        for request in requests:
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
