"""The per-request rows: one row per measured request of every process of an experiment."""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from llem_schema import ExperimentResult, RequestRecord
from llem_schema.metrics import percentile
from llem_schema.tabular.columns import Column, integer, number, text

__all__ = ["REQUEST_COLUMNS", "RequestRow", "each_request"]


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request of one process of one experiment."""

    experiment_id: str
    process_index: int
    record: RequestRecord


def _itl_mean_ms(row: RequestRow) -> float | None:
    gaps = row.record.itl_ms
    return math.fsum(gaps) / len(gaps) if gaps else None


def _itl_percentile_ms(q: float) -> Callable[[RequestRow], float | None]:
    def of(row: RequestRow) -> float | None:
        gaps = row.record.itl_ms
        return percentile(sorted(gaps), q) if gaps else None

    return of


def _itl_max_ms(row: RequestRow) -> float | None:
    gaps = row.record.itl_ms
    return max(gaps) if gaps else None


REQUEST_COLUMNS: Final[tuple[Column[RequestRow], ...]] = (
    text("experiment_id", "Experiment the request belongs to.", lambda r: r.experiment_id),
    integer("process_index", "Rank of the process that ran it.", lambda r: r.process_index),
    integer(
        "request_index", "Index of the prompt in the experiment.", lambda r: r.record.request_index
    ),
    integer("batch_index", "Batch within its process.", lambda r: r.record.batch_index),
    integer("input_tokens", "Prompt tokens.", lambda r: r.record.input_tokens),
    integer("output_tokens", "Generated tokens.", lambda r: r.record.output_tokens),
    number("ttft_ms", "Time to first token, ms.", lambda r: r.record.ttft_ms),
    number("e2e_ms", "Request start to last token, ms.", lambda r: r.record.e2e_ms),
    number("itl_mean_ms", "Mean gap between successive output tokens, ms.", _itl_mean_ms),
    number("tpot_ms", "(e2e - ttft) / (output tokens - 1), ms.", lambda r: r.record.tpot_ms),
    number(
        "start_s",
        "When it was sent, s into the energy window (to line up with the power timeseries).",
        lambda r: r.record.start_s,
    ),
    number(
        "scheduled_s",
        "When the arrival schedule meant it to go, s after the run began.",
        lambda r: r.record.scheduled_s,
    ),
    number(
        "itl_p50_ms", "Median gap between successive output tokens, ms.", _itl_percentile_ms(50)
    ),
    number("itl_p99_ms", "99th percentile of those gaps, ms.", _itl_percentile_ms(99)),
    number("itl_max_ms", "Longest of those gaps, ms.", _itl_max_ms),
    text("error", "Why the request failed; empty when it did not.", lambda r: r.record.error),
)
"""Per-request columns, in export order (same stability rules as the summary columns)."""


def each_request(result: ExperimentResult) -> Iterator[RequestRow]:
    """Every request of ``result``, process by process, in stored order."""
    for process in result.process_results:
        for record in process.requests:
            yield RequestRow(result.experiment_id, process.process_index, record)
