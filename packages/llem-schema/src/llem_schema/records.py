"""Per-request data: what a backend reports (:class:`RequestTiming`) and what a result keeps
(:class:`RequestRecord`)."""

from itertools import pairwise
from typing import Self

from pydantic import Field, NonNegativeFloat, NonNegativeInt, model_validator

from llem_schema._base import FrozenModel

__all__ = ["RequestRecord", "RequestTiming"]


class RequestTiming(FrozenModel):
    """One request as a backend saw it: when it started and when each output token arrived.

    Times are seconds on one monotonic clock of the process (``time.perf_counter()``).
    """

    request_index: NonNegativeInt = Field(description="Index of the prompt in the experiment.")
    batch_index: NonNegativeInt = Field(
        default=0,
        description="The backend's batch this request ran in, 0-based; 0 where the backend "
        "does not batch.",
    )
    input_tokens: NonNegativeInt = Field(description="Prompt length in tokens after truncation.")
    output_tokens: NonNegativeInt = Field(description="Tokens generated for this request.")
    start_s: float = Field(description="Monotonic time the request was submitted, s.")
    token_times_s: list[float] = Field(
        description="Monotonic time each output token became available, s, one per token."
    )
    error: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Why the request failed (an HTTP error, a timeout, a dropped connection), in a "
            "short line; None when it completed. Tokens that arrived before are kept."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.token_times_s) != self.output_tokens:
            raise ValueError(
                f"token_times_s has {len(self.token_times_s)} entries for "
                f"{self.output_tokens} output tokens"
            )
        previous = self.start_s
        for time_s in self.token_times_s:
            if time_s < previous:
                raise ValueError("token times must not precede the start or each other")
            previous = time_s
        return self


class RequestRecord(FrozenModel):
    """One measured request, with the latency figures llem's metric definitions derive."""

    request_index: NonNegativeInt = Field(description="Index of the prompt in the experiment.")
    batch_index: NonNegativeInt = Field(description="Index of the batch within its process.")
    input_tokens: NonNegativeInt = Field(description="Prompt length in tokens.")
    output_tokens: NonNegativeInt = Field(description="Tokens generated.")
    ttft_ms: NonNegativeFloat | None = Field(
        description="Time to first token, ms; None when no token was generated."
    )
    e2e_ms: NonNegativeFloat | None = Field(
        description="Request start to last token, ms; None when no token was generated."
    )
    itl_ms: list[NonNegativeFloat] = Field(
        description="Gaps between successive output tokens, ms (output_tokens - 1 values)."
    )
    start_s: float | None = Field(
        default=None,
        description=(
            "When the request started, s from the start of its process's energy window (the "
            "timeseries' clock); None in results before schema 1.2."
        ),
    )
    scheduled_s: float | None = Field(
        default=None,
        description=(
            "When the arrival schedule meant it to start, s from the window's start; equal to "
            "start_s where requests are taken as fast as possible. None before schema 1.2."
        ),
    )
    error: str | None = Field(
        default=None,
        min_length=1,
        description="Why the request failed, in a short line; None when it completed.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.output_tokens == 0:
            if self.ttft_ms is not None or self.e2e_ms is not None or self.itl_ms:
                raise ValueError("a request without output tokens has no latency figures")
            return self
        if self.ttft_ms is None or self.e2e_ms is None:
            raise ValueError("a request with output tokens needs ttft_ms and e2e_ms")
        if len(self.itl_ms) != self.output_tokens - 1:
            raise ValueError(
                f"itl_ms has {len(self.itl_ms)} gaps for {self.output_tokens} output tokens"
            )
        if self.e2e_ms < self.ttft_ms * (1 - 1e-9):
            raise ValueError("e2e_ms must not be smaller than ttft_ms")
        return self

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first, ms; ``None`` below two output tokens."""
        if self.output_tokens < 2 or self.e2e_ms is None or self.ttft_ms is None:
            return None
        return max(0.0, self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    @property
    def completed(self) -> bool:
        """Whether the request completed (no error)."""
        return self.error is None

    @classmethod
    def from_timing(
        cls,
        timing: RequestTiming,
        *,
        origin_s: float | None = None,
        scheduled_s: float | None = None,
    ) -> Self:
        """Derive TTFT, E2E and the inter-token gaps from a backend's token timestamps.

        ``origin_s`` is the window's start on the timing's clock: ``start_s`` is counted from
        it, and ``scheduled_s`` (already from the window's start) defaults to ``start_s``.
        """
        times = timing.token_times_s
        start_s = None if origin_s is None else timing.start_s - origin_s
        return cls(
            request_index=timing.request_index,
            batch_index=timing.batch_index,
            input_tokens=timing.input_tokens,
            output_tokens=timing.output_tokens,
            ttft_ms=(times[0] - timing.start_s) * 1000.0 if times else None,
            e2e_ms=(times[-1] - timing.start_s) * 1000.0 if times else None,
            itl_ms=[(b - a) * 1000.0 for a, b in pairwise(times)],
            start_s=start_s,
            scheduled_s=scheduled_s if scheduled_s is not None else start_s,
            error=timing.error,
        )
