"""``llem results show`` and ``llem results compare``: one experiment in full, or several
side by side, from the store (``show --raw`` prints the result file itself)."""

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from llem.commands._store import DbOption, open_store, result_file
from llem.errors import UsageError
from llem.render.format import MISSING, console, dumps, local_time, number
from llem_store import ExperimentSummary

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["KEY_METRICS", "compare", "show"]

Cell = Callable[[ExperimentSummary], str]

_METRICS: Final[tuple[tuple[str, Cell], ...]] = (
    ("requests", lambda s: number(s.requests)),
    ("input tokens", lambda s: number(s.input_tokens)),
    ("output tokens", lambda s: number(s.output_tokens)),
    ("duration s", lambda s: number(s.duration_s, 2)),
    ("energy J (raw)", lambda s: number(s.total_energy_j, 2)),
    ("energy J (baseline-adjusted)", lambda s: number(s.energy_adjusted_j, 2)),
    ("baseline power W", lambda s: number(s.baseline_power_w, 2)),
    ("output tokens/s", lambda s: number(s.output_tokens_per_s, 2)),
    ("output tokens/J (raw)", lambda s: number(s.output_tokens_per_j, 3)),
    ("output tokens/J (adjusted)", lambda s: number(s.output_tokens_per_j_adjusted, 3)),
    ("J per output token (raw)", lambda s: number(s.energy_per_output_token_j, 3)),
    ("TTFT p50 / p95 ms", lambda s: _pair(s.ttft_median_ms, s.ttft_p95_ms)),
    ("ITL p50 / p95 ms", lambda s: _pair(s.itl_median_ms, s.itl_p95_ms)),
    ("TPOT p50 ms", lambda s: number(s.tpot_median_ms, 2)),
    ("E2E p50 / p95 ms", lambda s: _pair(s.e2e_median_ms, s.e2e_p95_ms)),
    ("peak memory MB", lambda s: number(s.peak_memory_mb)),
    ("warnings", lambda s: number(s.warning_count)),
)

KEY_METRICS: Final = (
    "total_energy_j",
    "output_tokens_per_s",
    "output_tokens_per_j",
    "energy_per_output_token_j",
    "ttft_median_ms",
    "e2e_median_ms",
)
"""The metrics ``compare`` also gives as a ratio to the first experiment."""

_KEY_LABELS: Final = {
    "total_energy_j": "energy J",
    "output_tokens_per_s": "output tokens/s",
    "output_tokens_per_j": "output tokens/J",
    "energy_per_output_token_j": "J per output token",
    "ttft_median_ms": "TTFT p50 ms",
    "e2e_median_ms": "E2E p50 ms",
}


_STALE: Final = {"changed": "changed", "missing": "was moved or deleted"}


def show(
    experiment_id: Annotated[str, typer.Argument(help="An experiment id or a unique beginning.")],
    raw: Annotated[bool, typer.Option("--raw", help="Print the stored result.json as is.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="summary, request_stats, warnings and config.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Show one experiment: identity, config, metrics, per-request statistics, warnings."""
    with open_store(db) as store:
        summary = store.get(experiment_id)
        if raw:
            sys.stdout.write(_result_text(summary))
            return
        config = store.config(summary.experiment_id)
        warnings = store.warnings(summary.experiment_id)
        stats = store.request_stats(summary.experiment_id)
        file_state = store.file_state(summary.experiment_id)
    if file_state in ("changed", "missing"):
        typer.echo(
            f"note: {summary.result_path}/result.json {_STALE[file_state]} since it was "
            "indexed: what "
            "follows is the index's copy; re-index with `llem results import DIR`",
            err=True,
        )
    if as_json:
        data = {
            "summary": summary.to_json_dict(),
            "result_file": file_state,
            "request_stats": {
                name: None if value is None else value.model_dump(mode="json")
                for name, value in stats.items()
            },
            "warnings": [
                {"source": source, "code": code, "message": text} for source, code, text in warnings
            ],
            "config": config,
        }
        typer.echo(dumps(data))
        return
    out = console()
    _section(out, "experiment", _identity(summary))
    _section(out, "config", _config(summary, config))
    _section(out, "metrics", [(label, cell(summary)) for label, cell in _METRICS])
    _print_stats(out, {name: None if v is None else v.model_dump() for name, v in stats.items()})
    if warnings:
        out.print("[bold]warnings[/bold]")
        for source, code, text in warnings:
            out.print(f"  {source} ({code}): {text}", markup=False)


def compare(
    experiment_ids: Annotated[list[str], typer.Argument(help="Two or more experiment ids.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="experiments and ratios to the first.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Compare experiments side by side, with ratios to the first for the key metrics."""
    if len(experiment_ids) < 2:
        raise UsageError("compare needs two or more experiment ids")
    with open_store(db) as store:
        summaries = store.compare(experiment_ids)
    ratios = {key: _ratios(summaries, key) for key in KEY_METRICS}
    if as_json:
        typer.echo(dumps({"experiments": [s.to_json_dict() for s in summaries], "ratios": ratios}))
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("")
    for summary in summaries:
        table.add_column(summary.experiment_id, justify="right", no_wrap=True)
    rows: list[tuple[str, Cell]] = [
        ("model", lambda s: s.model),
        ("backend", lambda s: s.backend),
        ("precision", lambda s: s.precision or MISSING),
        ("batch size", lambda s: number(s.batch_size)),
        ("processes", lambda s: number(s.num_processes)),
        ("status", lambda s: s.status),
        ("created", lambda s: local_time(s.created_at)),
        *_METRICS,
    ]
    for label, cell in rows:
        table.add_row(Text(label), *(Text(cell(s)) for s in summaries))
    table.add_section()
    for key in KEY_METRICS:
        table.add_row(
            Text(f"{_KEY_LABELS[key]} vs first"),
            *(Text(MISSING if r is None else f"{r:.2f}x") for r in ratios[key]),
        )
    console().print(table)


def _ratios(summaries: Sequence[ExperimentSummary], key: str) -> list[float | None]:
    """Each experiment's ``key`` over the first's; None where either is missing or zero."""
    first = getattr(summaries[0], key)
    ratios: list[float | None] = []
    for summary in summaries:
        value = getattr(summary, key)
        ratios.append(None if value is None or not first else value / first)
    return ratios


def _result_text(summary: ExperimentSummary) -> str:
    file = result_file(summary)
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None


def _pair(first: float | None, second: float | None) -> str:
    if first is None and second is None:
        return MISSING
    return f"{number(first, 2)} / {number(second, 2)}"


def _identity(s: ExperimentSummary) -> list[tuple[str, str]]:
    lines = [
        ("id", s.experiment_id),
        ("name", s.name or MISSING),
        ("status", s.status),
        ("created", local_time(s.created_at)),
        ("ended", local_time(s.end_time)),
        ("path", str(s.result_path) if s.result_path else MISSING),
        ("schema version", s.schema_version or MISSING),
        ("config hash", s.config_hash),
    ]
    if s.study_id:
        lines.append(("study", s.study_id))
    if s.error:
        lines.append(("error", s.error))
    return lines


def _config(s: ExperimentSummary, config: dict[str, Any]) -> list[tuple[str, str]]:
    version = f" {s.backend_version}" if s.backend_version else ""
    return [
        ("model", s.model),
        ("backend", s.backend + version),
        ("precision", s.precision or MISSING),
        ("batch size", number(s.batch_size)),
        ("n (prompts)", _value(config.get("n"))),
        ("max new tokens", _value(config.get("max_new_tokens"))),
        ("processes", number(s.num_processes)),
    ]


def _value(value: object) -> str:
    return MISSING if value is None else str(value)


def _section(out: "Console", title: str, lines: list[tuple[str, str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    out.print(f"[bold]{title}[/bold]")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for label, value in lines:
        grid.add_row(Text(f"  {label}"), Text(value))
    out.print(grid)


def _print_stats(out: "Console", stats: dict[str, dict[str, Any] | None]) -> None:
    from rich import box
    from rich.table import Table

    out.print("[bold]per-request statistics[/bold] (ms, over the indexed request rows)")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("  metric")
    for column in ("count", "mean", "p50", "p90", "p95", "p99", "min", "max"):
        table.add_column(column, justify="right")
    for name, values in stats.items():
        if values is None:
            table.add_row(f"  {name}", "0", *(MISSING,) * 7)
            continue
        table.add_row(
            f"  {name}",
            number(values["count"]),
            *(
                number(values[key], 2)
                for key in (
                    "mean_ms",
                    "median_ms",
                    "p90_ms",
                    "p95_ms",
                    "p99_ms",
                    "min_ms",
                    "max_ms",
                )
            ),
        )
    out.print(table)
