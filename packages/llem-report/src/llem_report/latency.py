"""Figures of per-request latency: :func:`latency_cdfs` (TTFT, ITL, TPOT and E2E
distributions) and :func:`latency_over_time` (each request's start against its latency)."""

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Final

import numpy as np
from matplotlib.figure import Figure

from llem_report._common import (
    Experiments,
    drawing,
    experiments_of,
    footnote,
    labels,
    new_figure,
    no_data,
    settle,
    warning_lines,
)
from llem_report.errors import ReportError
from llem_report.loading import Experiment
from llem_report.reduce import DEFAULT_BUCKETS, FloatArray, cdf_points
from llem_schema import ExperimentResult, RequestRecord

__all__ = ["LATENCY_WARNINGS", "latency_cdfs", "latency_over_time"]

LATENCY_WARNINGS: Final = frozenset(
    {
        "failed_requests",
        "interrupted",
        "incomplete",
        "window_skew",
        "few_prompts",
        "no_steady_state",
    }
)
"""The warning codes that bear on latency figures."""

_MAX_SERIES: Final = 12
"""Distributions drawn in one panel; beyond, the legend is unreadable (the report says so)."""

_METRICS: Final[tuple[tuple[str, str, Callable[[RequestRecord], Iterable[float]]], ...]] = (
    ("TTFT", "time to first token (ms)", lambda r: () if r.ttft_ms is None else (r.ttft_ms,)),
    ("ITL", "inter-token latency, every gap (ms)", lambda r: r.itl_ms),
    (
        "TPOT",
        "time per output token after the first (ms)",
        lambda r: () if r.tpot_ms is None else (r.tpot_ms,),
    ),
    ("E2E", "end-to-end latency (ms)", lambda r: () if r.e2e_ms is None else (r.e2e_ms,)),
)


def _completed(result: ExperimentResult) -> Iterator[RequestRecord]:
    """The requests that completed: a failed one's partial times are left out, as the
    result's latency statistics leave them out."""
    for process in result.process_results:
        yield from (request for request in process.requests if request.error is None)


def _failed(result: ExperimentResult) -> int:
    return sum(1 for p in result.process_results for r in p.requests if r.error is not None)


def _values(result: ExperimentResult, of: Callable[[RequestRecord], Iterable[float]]) -> FloatArray:
    return np.fromiter(chain.from_iterable(of(r) for r in _completed(result)), dtype=np.float64)


@drawing
def latency_cdfs(experiments: Experiments) -> Figure:
    """The distribution (empirical CDF) of TTFT, ITL, TPOT and E2E, one line per experiment,
    over the requests that completed with tokens."""
    chosen = experiments_of(experiments)
    notes = []
    if len(chosen) > _MAX_SERIES:
        notes.append(f"The first {_MAX_SERIES} of {len(chosen)} experiments are drawn.")
        chosen = chosen[:_MAX_SERIES]
    names = labels(chosen)
    figure = new_figure(5.6)
    panels = figure.subplots(2, 2).flatten()
    largest = 0  # values in the largest distribution drawn at fewer points
    for axes, (short, title, of) in zip(panels, _METRICS, strict=True):
        drawn = False
        for name, experiment in zip(names, chosen, strict=True):
            values = _values(experiment.result, of)
            if len(values) == 0:
                continue
            x, y = cdf_points(values)
            if len(x) < len(values):
                largest = max(largest, len(values))
            axes.step(x, y, where="post", lw=1.0, label=name)
            drawn = True
        if not drawn:
            no_data(axes, f"no {short} values")
        else:
            axes.set_ylim(0.0, 1.0)
            axes.grid(alpha=0.3)
        axes.set_xlabel(title, fontsize=8)
        axes.set_ylabel("fraction of values", fontsize=8)
        axes.tick_params(labelsize=7)
    handles, legend_labels = panels[0].get_legend_handles_labels()
    if len(chosen) > 1 and handles:
        figure.legend(
            handles,
            legend_labels,
            loc="outside upper right",
            fontsize=7,
            ncols=min(3, len(handles)),
        )
    figure.suptitle(
        "Latency distributions" + (f": {chosen[0].id}" if len(chosen) == 1 else ""),
        fontsize=10,
        x=0.01,
        ha="left",
    )
    if largest:
        notes.append(
            f"Distributions of more than {2 * DEFAULT_BUCKETS:,} values are drawn at "
            f"{2 * DEFAULT_BUCKETS:,} evenly spaced ranks, exact at each (the largest here: "
            f"{largest:,} values)."
        )
    failed = sum(_failed(e.result) for e in chosen)
    if failed:
        notes.append(
            f"{failed:,} failed requests are left out, as the latency statistics leave them out."
        )
    footnote(figure, notes, warning_lines(chosen, LATENCY_WARNINGS))
    return settle(figure)


@drawing
def latency_over_time(experiment: Experiment | ExperimentResult) -> Figure:
    """Each request's start against its TTFT and E2E latency, on the energy window's clock,
    with the steady-state window where the run has one; failed requests marked at their
    start."""
    chosen = experiments_of(experiment)[0]
    result = chosen.result
    starts, ttft, e2e, failed = [], [], [], []
    for process in result.process_results:
        offset = (process.start_time - result.start_time).total_seconds()
        for request in process.requests:
            if request.start_s is None:
                raise ReportError(
                    f"{result.experiment_id}: its requests carry no start times (results "
                    "before schema 1.2 do not): there is no start to draw latency against"
                )
            start = request.start_s + offset
            if request.error is not None:
                failed.append(start)
            elif request.e2e_ms is not None and request.ttft_ms is not None:
                starts.append(start)
                ttft.append(request.ttft_ms)
                e2e.append(request.e2e_ms)
    figure = new_figure(3.8)
    axes = figure.subplots()
    if result.steady_state is not None:
        low, high = result.steady_state.steady_state_window
        axes.axvspan(low, high, color="#b7d7f0", alpha=0.6, lw=0, label="steady state")
    size = 9.0 if len(starts) < 2_000 else 2.0
    at = np.array(starts)
    axes.scatter(at, np.array(e2e), s=size, lw=0, label="E2E", rasterized=True)
    axes.scatter(at, np.array(ttft), s=size, lw=0, label="TTFT", rasterized=True)
    if failed:
        axes.plot(
            failed, [0.0] * len(failed), "|", color="#c0392b", ms=8, label=f"failed ({len(failed)})"
        )
    if not starts and not failed:
        no_data(axes, "no requests")
    axes.set_xlabel("request start, since the window's start (s)")
    axes.set_ylabel("latency (ms)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", markerscale=2)
    axes.set_title(f"Latency by request start: {result.experiment_id}", fontsize=10, loc="left")
    footnote(
        figure,
        [
            f"{len(starts):,} completed requests"
            + (f"; {len(failed):,} failed, marked at their start." if failed else ".")
        ],
        warning_lines([chosen], LATENCY_WARNINGS),
    )
    return settle(figure)
