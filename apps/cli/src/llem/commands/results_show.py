"""``llem results show`` and ``llem results compare``: one experiment in full, or several
side by side, from the store (``show --raw`` prints the result file itself)."""

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from llem.commands._store import DbOption, open_store, refuse_to_replace, result_file
from llem.errors import UsageError
from llem.render.format import MISSING, Column, Listing, console, dumps, number, utc_time
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
    ("energy J (adjusted)", lambda s: number(s.energy_adjusted_j, 2)),  # for the baseline
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
    experiment_id: Annotated[
        str,
        typer.Argument(
            help="An experiment id, a unique beginning of one, or its result directory."
        ),
    ],
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
        said: set[tuple[str, str]] = set()
        for source, code, text in warnings:
            if (code, text) not in said:  # each once, whichever part of llem gave it
                said.add((code, text))
                out.print(f"  {source} ({code}): {text}", markup=False)


def compare(
    experiment_ids: Annotated[
        list[str],
        typer.Argument(help="Two or more experiments (ids, beginnings or result directories)."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="experiments and ratios to the first.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Also keep the comparison: .csv, .json or .xlsx, a row per experiment with "
            "its ratios to the first.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --output if it exists.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Compare experiments side by side, with ratios to the first for the key metrics."""
    if len(experiment_ids) < 2:
        raise UsageError("compare needs two or more experiment ids")
    refuse_to_replace(output, overwrite=overwrite)
    with open_store(db) as store:
        summaries = store.compare(experiment_ids)
    ratios = {key: _ratios(summaries, key) for key in KEY_METRICS}
    if output is not None:
        _keep(summaries, ratios, output)
    if as_json:
        typer.echo(dumps({"experiments": [s.to_json_dict() for s in summaries], "ratios": ratios}))
        return
    _print_compare(summaries, ratios)


def _print_compare(
    summaries: Sequence[ExperimentSummary], ratios: dict[str, list[float | None]]
) -> None:
    """A column of labels, and a column per experiment headed by its id. On a terminal too
    narrow for that, the columns are headed #1, #2, ... under a list of the ids; too narrow
    still, the experiments go on in blocks, each with the labels again."""
    out = console()
    listing = _comparison(summaries, ratios, numbered=False)
    if out.is_terminal and len(listing.blocks(out.width)) > 1:
        listing = _comparison(summaries, ratios, numbered=True)
        for index, summary in enumerate(summaries, 1):
            out.print(f"#{index}  {summary.experiment_id}", markup=False)
        out.print()
    blocks = listing.blocks(out.width) if out.is_terminal else [listing]
    for index, block in enumerate(blocks):
        if index:
            out.print()
        out.print(block)


def _comparison(
    summaries: Sequence[ExperimentSummary],
    ratios: dict[str, list[float | None]],
    *,
    numbered: bool,
) -> Listing:
    """The labels and a column per experiment, headed by its id, or by #1, #2, ..."""
    rows: list[tuple[str, Cell]] = [
        ("model", lambda s: s.model),
        ("backend", lambda s: s.backend),
        ("precision", lambda s: s.precision or MISSING),
        ("batch size", lambda s: number(s.batch_size)),
        ("processes", lambda s: number(s.num_processes)),
        ("status", lambda s: s.status),
        ("created", lambda s: utc_time(s.created_at)),
        *_METRICS,
    ]
    labels = [label for label, _ in rows] + [f"{_KEY_LABELS[key]} vs first" for key in KEY_METRICS]
    columns = [Column("", labels, wrap=True)]
    for index, summary in enumerate(summaries):
        figures = [cell(summary) for _, cell in rows]
        figures += [
            MISSING if ratio is None else f"{ratio:.2f}x"
            for ratio in (ratios[key][index] for key in KEY_METRICS)
        ]
        header = f"#{index + 1}" if numbered else summary.experiment_id
        columns.append(Column(header, figures, right=True))
    return Listing(columns, sections=[len(rows)])


def _keep(
    summaries: Sequence[ExperimentSummary], ratios: dict[str, list[float | None]], output: Path
) -> None:
    """The comparison as a file: each experiment's summary fields, then ``<metric>_vs_first``
    for each key metric."""
    from llem_persistence.exporters import ExportError, ExportTargetError, write_table

    rows = [summary.to_json_dict() for summary in summaries]
    names = [*rows[0], *(f"{key}_vs_first" for key in KEY_METRICS)]
    table = [
        [*row.values(), *(ratios[key][index] for key in KEY_METRICS)]
        for index, row in enumerate(rows)
    ]
    try:
        write_table(names, table, output, sheet="comparison")
    except ExportTargetError as exc:  # a path that cannot be written: a mistake in the command
        raise UsageError(str(exc)) from None
    except ExportError as exc:
        raise UsageError(str(exc).replace("format=", "--format")) from None
    typer.echo(f"comparison of {len(rows)} experiments kept in {output}", err=True)


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
        ("created", utc_time(s.created_at)),
        ("ended", utc_time(s.end_time)),
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
    out.print(f"[bold]{title}[/bold]")
    labels = Column("", [f"  {label}" for label, _ in lines], style="dim")
    out.print(
        Listing([labels, Column("", [value for _, value in lines], wrap=True)], show_header=False)
    )


_STATS: Final = (
    ("count", "count"),
    ("mean", "mean_ms"),
    ("p50", "median_ms"),
    ("p90", "p90_ms"),
    ("p95", "p95_ms"),
    ("p99", "p99_ms"),
    ("min", "min_ms"),
    ("max", "max_ms"),
)
_STATS_DROPPED_FIRST: Final = ("p90", "min", "p99", "mean", "max", "count")
"""The statistics a terminal too narrow for all of them leaves out, the least useful first."""


def _print_stats(out: "Console", stats: dict[str, dict[str, Any] | None]) -> None:
    out.print("[bold]per-request statistics[/bold] (ms, over the indexed request rows)")
    columns = [Column("  metric", [f"  {name}" for name in stats])]
    for header, key in _STATS:
        cells = [_statistic(values, key) for values in stats.values()]
        columns.append(Column(header, cells, right=True))
    listing = Listing(columns)
    out.print(listing.fit(out.width, drop=_STATS_DROPPED_FIRST) if out.is_terminal else listing)


def _statistic(values: dict[str, Any] | None, key: str) -> str:
    """A count, or a time in ms to two decimals; a metric no request has is ``0`` and ``-``."""
    if values is None:
        return "0" if key == "count" else MISSING
    return number(values[key]) if key == "count" else number(values[key], 2)
