"""The end-of-run summary (step 6): energy, throughput, latency, efficiency, warnings, path."""

from pathlib import Path
from typing import Final

from rich.console import Group, RenderableType
from rich.text import Text

from llem.render.format import Column, Listing
from llem_schema import ExperimentResult, LatencyStats

__all__ = ["summary"]


_SCOPES: Final = {"gpu": "GPU", "cpu": "host CPU, RAPL", "total": "GPU + host CPU"}
"""How each energy scope is named beside the energy it gives the efficiency figures."""


def _num(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f} {unit}".strip()


def _latency(stats: LatencyStats | None) -> str:
    if stats is None:
        return "-"
    return f"p50 {stats.median_ms:,.1f}  p95 {stats.p95_ms:,.1f}  p99 {stats.p99_ms:,.1f} ms"


def summary(result: ExperimentResult, directory: Path) -> RenderableType:
    """A table of the key figures, then the warnings and where the result is."""
    efficiency = result.efficiency
    scope_j = result.scope_energy_j() if result.energy_scope else result.total_energy_j
    rows = [
        ("duration", _num(result.duration_s, "s")),
        ("tokens in / out", f"{result.input_tokens:,} / {result.output_tokens:,}"),
        (f"energy ({_SCOPES.get(str(result.energy_scope), 'raw')})", _num(scope_j, "J")),
        *(
            [("  GPU + host CPU", _num(result.total_energy_j, "J"))]
            if result.energy_scope == "gpu" and result.cpu_energy_j is not None
            else []
        ),
        ("energy (baseline-adjusted)", _num(result.energy_adjusted_j, "J")),
        ("baseline power", _num(result.baseline_power_w, "W")),
        ("throughput", _num(result.output_tokens_per_s, "output tokens/s")),
        ("TTFT", _latency(result.latency.ttft)),
        ("ITL", _latency(result.latency.itl)),
        ("E2E", _latency(result.latency.e2e)),
        ("output tokens per joule", _num(efficiency.output_tokens_per_j, "tok/J", 3)),
        ("  adjusted", _num(efficiency.output_tokens_per_j_adjusted, "tok/J", 3)),
        ("joules per output token", _num(efficiency.energy_per_output_token_j, "J/tok", 4)),
    ]
    requests = result.request_metrics
    if requests is not None:
        failed = f", {requests.failed_requests:,} failed" if requests.failed_requests else ""
        rate = (
            f" (arrivals {_num(requests.achieved_rate_per_s, '/s')} of "
            f"{_num(requests.requested_rate_per_s, '/s')} asked)"
            if requests.requested_rate_per_s is not None
            else ""
        )
        rows[2:2] = [
            ("requests", f"{requests.requests:,}{failed}"),
            ("request throughput", _num(requests.request_throughput_per_s, "requests/s") + rate),
        ]
        if requests.goodput_per_s is not None:
            rows.insert(
                4, ("goodput (meeting the SLOs)", _num(requests.goodput_per_s, "requests/s"))
            )
        if requests.energy_per_request_j is not None:
            rows.append(("energy per request", _num(requests.energy_per_request_j, "J", 3)))
    steady = result.steady_state
    if steady is not None:
        start, end = steady.steady_state_window
        rows.append(
            (
                f"steady state ({start:.1f}-{end:.1f} s)",
                _num(steady.output_tokens_per_s, "output tokens/s")
                + (
                    f", {steady.energy_per_output_token_j:.4f} J/tok"
                    if steady.energy_per_output_token_j is not None
                    else ""
                ),
            )
        )
    table = Listing(
        [
            Column("metric", [name for name, _ in rows], style="bold"),
            Column("value", [value for _, value in rows]),
        ],
        title=f"{result.model} on {result.backend}",
        show_header=False,
    )
    parts: list[RenderableType] = [table]
    if result.measurement_warnings:
        parts.append(
            Text(f"{len(result.measurement_warnings)} measurement warning(s):", style="yellow")
        )
        parts.extend(Text(f"  - [{w.code}] {w.message}") for w in result.measurement_warnings)
    parts.append(Text(f"result: {directory}", style="bold"))
    return Group(*parts)
